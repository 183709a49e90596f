package pyjson

import (
	"errors"
	"math"
	"math/big"
	"os/exec"
	"strings"
	"testing"

	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func bigInt(s string) *big.Int { b, _ := new(big.Int).SetString(s, 10); return b }

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     any
	}{
		{"int", `42`, int64(42)},
		{"negative", `-7`, int64(-7)},
		{"big int", `1180591620717411303424`, bigInt("1180591620717411303424")},
		{"float", `2.5`, 2.5},
		{"float exponent", `1e+16`, 1e16},
		{"float overflow is inf", `1e400`, math.Inf(1)},
		{"escaped", `"Jos\u00e9 \ud83d\ude00"`, "José 😀"},
		{"dict", `{"a":[1,null,true,"x"],"b":{"c":1.0}}`, map[string]any{"a": []any{int64(1), nil, true, "x"}, "b": map[string]any{"c": 1.0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unmarshal([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b *big.Int) bool { return a.Cmp(b) == 0 })); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`NaN`, `{"a":Infinity}`, `-Infinity`, `{"a":1`, `{} {}`, ``, `[1,]`} {
		t.Run(in, func(t *testing.T) {
			if v, err := Unmarshal([]byte(in)); !errors.Is(err, ErrSyntax) {
				t.Fatalf("Unmarshal(%q) = %v, %v; want ErrSyntax", in, v, err)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    any
		style Style
		want  string
	}{
		{"compact dict sorted", map[string]any{"b": int64(1), "a": "x"}, Compact, `{"a":"x","b":1}`},
		{"spaced", map[string]any{"b": []any{int64(1), int64(2)}, "a": nil}, Spaced, `{"a": null, "b": [1, 2]}`},
		{"non-ascii", "José ☃ 😀", Compact, `"Jos\u00e9 \u2603 \ud83d\ude00"`},
		{"controls", "a\"\\\n\r\t\b\f\x01\x7f<>&", Compact, `"a\"\\\n\r\t\b\f\u0001` + "\x7f" + `<>&"`},
		{"float repr", []any{1.0, 0.1, 1e16, 1234567890123456.0, 1e-5, 0.0001, math.Copysign(0, -1), 1.5e300}, Compact, `[1.0,0.1,1e+16,1234567890123456.0,1e-05,0.0001,-0.0,1.5e+300]`},
		{"big", bigInt("-1180591620717411303424"), Compact, `-1180591620717411303424`},
		{"go types", map[string]string{"k": "v"}, Compact, `{"k":"v"}`},
		{"uint", []uint16{1, 2}, Compact, `[1,2]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.in, tc.style)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestMarshalRefuses(t *testing.T) {
	t.Parallel()
	for _, v := range []any{math.NaN(), math.Inf(-1), []byte("x"), map[int]any{1: 1}, struct{}{}, make(chan int)} {
		var ue *UnsupportedError
		if _, err := Marshal(v, Compact); !errors.As(err, &ue) {
			t.Errorf("Marshal(%T) err = %v; want *UnsupportedError", v, err)
		}
	}
}

// TestMarshalMatchesPython compares the bytes with Python's own json.dumps.
func TestMarshalMatchesPython(t *testing.T) {
	t.Parallel()
	py := testenv.Python(t, "json")
	v := map[string]any{
		"s": "Zoë ☃ 😀 \x00 \u2028 \"q\" \\", "i": int64(-12), "f": []any{0.1, 1e22, 3.0, 2.5e-7, 123456.789},
		"n": nil, "b": false, "big": bigInt("123456789012345678901234567890"),
	}
	for _, style := range []Style{Compact, Spaced} {
		got, err := Marshal(v, style)
		if err != nil {
			t.Fatal(err)
		}
		sep := `(",", ":")`
		if style == Spaced {
			sep = `(", ", ": ")`
		}
		script := `import json,sys; v=json.loads(sys.stdin.read()); sys.stdout.write(json.dumps(v, sort_keys=True, separators=` + sep + `))`
		cmd := exec.Command(py, "-c", script)
		cmd.Stdin = strings.NewReader(string(got))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v: %s", err, out)
		}
		if string(out) != string(got) {
			t.Errorf("style %d:\npython %s\ngo     %s", style, out, got)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1.5,"x",null]`, `"\ud83d"`, `123456789012345678901234567890`, `{"a":{"b":[true,false]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unmarshal(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same thing.
		b, err := Marshal(v, Compact)
		if err != nil {
			var ue *UnsupportedError
			if errors.As(err, &ue) && ue.Type == "float" {
				return // 1e400 decodes to +Inf, which JSON cannot carry back
			}
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		v2, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("re-Unmarshal(%s): %v", b, err)
		}
		b2, _ := Marshal(v2, Compact)
		if string(b) != string(b2) {
			t.Fatalf("not stable: %s vs %s", b, b2)
		}
	})
}
