package pickle

import (
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 }),
	cmp.Comparer(func(a, b time.Time) bool {
		_, oa := a.Zone()
		_, ob := b.Zone()
		return a.Equal(b) && oa == ob && (a.Location() == Naive) == (b.Location() == Naive)
	}),
}

func bigInt(s string) *big.Int { b, _ := new(big.Int).SetString(s, 10); return b }

// wantSession is testdata/gen.py's session as the decoder must return it.
func wantSession() map[string]any {
	return map[string]any{
		"_auth_user_id":      "42",
		"_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
		"_auth_user_hash":    "67e7c9adea230752f9c92526b4736242f80980e9e179ad4b5cf7252dbd871eeb",
		"_session_expiry":    time.Date(2024, 1, 2, 3, 4, 5, 678000, time.UTC),
		"cart":               []any{int64(1), 2.5, true, false, nil, []any{int64(1), "x"}, "Zoë ☃ 😀", []byte{0, 0xff}},
		"big":                bigInt("1180591620717411303424"),
		"neg":                int64(-5),
		"negbig":             bigInt("-18446744073709551616"),
		"i32":                int64(1 << 31),
		"i16":                int64(40000),
		"naive":              time.Date(2020, 2, 29, 23, 59, 59, 0, Naive),
		"utc":                time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
		"plus2":              time.Date(2024, 1, 2, 0, 0, 0, 0, time.FixedZone("", 7200)),
		"delta":              -24*time.Hour + 5*time.Second + 7*time.Microsecond,
		"nested":             map[string]any{"a": map[string]any{"b": []any{}}},
		"long":               strings.Repeat("x", 300),
	}
}

func TestUnmarshalPythonFixtures(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"2", "3", "4", "5"} {
		t.Run("protocol "+p, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "session-p"+p+".pickle"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(wantSession(), got, cmpOpts); d != "" {
				t.Fatalf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/evil-*.pickle")
	if len(files) == 0 {
		t.Fatal("no evil fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Unmarshal(data)
			var fe *ForbiddenError
			if !errors.As(err, &fe) || !errors.Is(err, ErrForbidden) {
				t.Fatalf("Unmarshal = %v, %v; want *ForbiddenError", v, err)
			}
		})
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"no stop", "\x80\x04N", ErrTruncated},
		{"short string", "\x80\x04\x8c\x05ab", ErrTruncated},
		{"huge length", "\x80\x04X\xff\xff\xff\x7fab", ErrTruncated},
		{"underflow", "\x80\x04.", ErrMalformed},
		{"setitem on list", "\x80\x04]K\x01K\x02s.", ErrMalformed},
		{"int key", "\x80\x04}K\x01K\x02s.", ErrMalformed},
		{"missing memo", "\x80\x04h\x05.", ErrMalformed},
		{"recursive list", "\x80\x04]\x94h\x00a.", ErrMalformed},
		{"bad protocol", "\x80\x09N.", ErrMalformed},
		{"bad datetime", "\x80\x04\x8c\x08datetime\x8c\x08datetime\x93C\x02ab\x85R.", ErrMalformed},
		{"february 30", "\x80\x04\x8c\x08datetime\x8c\x08datetime\x93C\x0a\x07\xe8\x02\x1e\x00\x00\x00\x00\x00\x00\x85R.", ErrMalformed},
		{"reduce non-global", "\x80\x04N)R.", ErrForbidden},
		{"builtins eval", "\x80\x04\x8c\x08builtins\x8c\x04eval\x93.", ErrForbidden},
		// Refused at the global itself, before the (here missing) rest is read.
		{"global refused at once", "\x80\x04\x8c\x02os\x8c\x06system\x93\x8c", ErrForbidden},
		{"text global refused at once", "cos\nsystem\n(", ErrForbidden},
		{"newobj", "\x80\x04N)\x81.", ErrForbidden},
		{"build", "\x80\x04}}b.", ErrForbidden},
		{"bare global", "\x80\x04\x8c\x04pytz\x8c\x04_UTC\x93.", ErrForbidden},
		{"codecs non latin1", "\x80\x04\x8c\x07_codecs\x8c\x06encode\x93\x8c\x01a\x8c\x04utf8\x86R.", ErrForbidden},
		{"persid", "\x80\x04\x8c\x01aQ.", ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Unmarshal([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Unmarshal = %#v, %v; want %v", v, err, tc.want)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	want := wantSession()
	b, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Fatalf("(-want +got)\n%s", d)
	}
	if _, err := Marshal(map[int]any{1: 2}); err == nil {
		t.Fatal("int map keys accepted")
	}
	if _, err := Marshal(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("year 10000 accepted")
	}
}

// TestMarshalReadByPython checks that Python's own unpickler reads what
// Marshal writes and sees the same values.
func TestMarshalReadByPython(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "pickle")
	b, err := Marshal(wantSession())
	if err != nil {
		t.Fatal(err)
	}
	script := `
import datetime, json, pickle, sys
v = pickle.loads(sys.stdin.buffer.read())
def plain(x):
    if isinstance(x, datetime.datetime):
        return ["datetime", x.isoformat()]
    if isinstance(x, datetime.timedelta):
        return ["timedelta", x.days, x.seconds, x.microseconds]
    if isinstance(x, bytes):
        return ["bytes", x.hex()]
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    if isinstance(x, dict):
        return {k: plain(i) for k, i in x.items()}
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return x
print(json.dumps(plain(v), sort_keys=True))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(b))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"_session_expiry": []any{"datetime", "2024-01-02T03:04:05.000678+00:00"},
		"naive":           []any{"datetime", "2020-02-29T23:59:59"},
		"plus2":           []any{"datetime", "2024-01-02T00:00:00+02:00"},
		"delta":           []any{"timedelta", -1.0, 5.0, 7.0},
		"big":             "1180591620717411303424",
		"negbig":          "-18446744073709551616",
		"i32":             "2147483648",
		"cart":            []any{"1", 2.5, true, false, nil, []any{"1", "x"}, "Zoë ☃ 😀", []any{"bytes", "00ff"}},
		"long":            strings.Repeat("x", 300),
	}
	for k, want := range checks {
		if d := cmp.Diff(want, got[k]); d != "" {
			t.Errorf("%s: (-want +got)\n%s", k, d)
		}
	}
}

// TestFixturesMatchPython regenerates the fixtures with the real Python and
// checks that the committed ones are still what it writes.
func TestFixturesMatchPython(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "pytz")
	dir := t.TempDir()
	if out, err := exec.Command(py, "testdata/gen.py", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, out)
	}
	for _, p := range []string{"2", "3", "4", "5"} {
		data, err := os.ReadFile(filepath.Join(dir, "session-p"+p+".pickle"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(data)
		if err != nil {
			t.Fatalf("protocol %s: %v", p, err)
		}
		if d := cmp.Diff(wantSession(), got, cmpOpts); d != "" {
			t.Fatalf("protocol %s: (-want +got)\n%s", p, d)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pickle")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("\x80\x04]\x94h\x00a."))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small expansion bound keeps each run fast; the bound itself is
		// tested above.
		v, err := UnmarshalLimits(data, Limits{MaxItems: 10_000})
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		b, err := Marshal(v)
		if err != nil {
			var ue *UnsupportedError
			if errors.As(err, &ue) {
				return
			}
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		v2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("re-Unmarshal: %v", err)
		}
		if d := cmp.Diff(v, v2, cmpOpts, cmp.Comparer(func(a, b float64) bool { return a == b || (a != a && b != b) })); d != "" {
			t.Fatalf("round trip changed the value:\n%s", d)
		}
	})
}

func TestUnmarshalBoundsSharing(t *testing.T) {
	t.Parallel()
	// l0 = []; l1 = [l0, l0]; ... l40: tiny pickle, 2^40 items expanded.
	var b []byte
	b = append(b, "\x80\x04]\x94"...)
	for i := 0; i < 40; i++ {
		b = append(b, '(', 'h', byte(i), 'h', byte(i), 'l', 0x94) // MARK GET GET LIST MEMOIZE
	}
	b = append(b, '.')
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v; want ErrMalformed for an exponential structure", err)
	}
}
