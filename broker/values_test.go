package broker

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTime(t *testing.T) {
	utc := func(y, mo, d, h, mi, s, ns int) time.Time {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-11-25T18:31:29.183361+00:00", utc(2026, 11, 25, 18, 31, 29, 183361000), false},
		{"2026-11-25T18:31:29Z", utc(2026, 11, 25, 18, 31, 29, 0), false},
		{"2026-11-25T18:31:29.5Z", utc(2026, 11, 25, 18, 31, 29, 500000000), false},
		{"2026-11-25 18:31:29.123+02:00", utc(2026, 11, 25, 16, 31, 29, 123000000), false},
		{"2026-11-25T18:31:29-0530", utc(2026, 11, 26, 0, 1, 29, 0), false},
		{"2026-11-25T18:31:29.123456789+00:00", utc(2026, 11, 25, 18, 31, 29, 123456789), false},
		{"2026-11-25T18:31", utc(2026, 11, 25, 18, 31, 0, 0), false},
		{"2026-11-25", utc(2026, 11, 25, 0, 0, 0, 0), false},
		{"2026-11-25T18:31:29.183361", utc(2026, 11, 25, 18, 31, 29, 183361000), false},
		{"", time.Time{}, true},
		{"2026-02-30T00:00:00", time.Time{}, true},
		{"2026-11-25T25:00:00", time.Time{}, true},
		{"2026-11-25T18:31:29+00:00junk", time.Time{}, true},
		{"2026-11-25T18:31:29.", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && !got.Equal(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFormatTimeIsCelerySafe(t *testing.T) {
	for _, tt := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 500000000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600)),
	} {
		s := FormatTime(tt)
		if !strings.Contains(s, ".") || len(s[strings.Index(s, ".")+1:strings.LastIndexAny(s, "+-")]) != 6 {
			t.Errorf("%s: need exactly six fraction digits", s)
		}
		back, err := ParseTime(s)
		if err != nil || !back.Equal(tt.Truncate(time.Microsecond)) {
			t.Errorf("%s: round trip %v %v", s, back, err)
		}
	}
	if got := FormatDateDone(time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)); got != "2026-05-01T12:00:00.123456" {
		t.Errorf("date_done %q", got)
	}
}

func TestReprMatchesPython(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "repr.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Value    json.RawMessage `json:"value"`
		Repr     string          `json:"repr"`
		ArgsRepr string          `json:"argsrepr"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		v, err := UnmarshalJSON(c.Value)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(c.Repr[:min(len(c.Repr), 30)], func(t *testing.T) {
			if len(c.Repr) > maxRepr {
				if got := Repr(v); len(got) > maxRepr+3 || !strings.HasSuffix(got, "...") {
					t.Errorf("long repr not cut: %d chars", len(got))
				}
				return
			}
			if got := Repr(v); got != c.Repr {
				t.Errorf("Repr = %s, Python says %s", got, c.Repr)
			}
			if got := ArgsRepr([]any{v}); got != c.ArgsRepr {
				t.Errorf("ArgsRepr = %s, Python says %s", got, c.ArgsRepr)
			}
		})
	}
}

func TestMarshalJSONKeepsPythonTypes(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{2.0, "2.0"},
		{1.5, "1.5"},
		{1e-05, "1e-05"},
		{1e16, "1e+16"},
		{123456789.0, "123456789.0"},
		{math.NaN(), "NaN"},
		{math.Inf(-1), "-Infinity"},
		{int64(7), "7"},
		{[]float64{1, 2.5}, "[1.0, 2.5]"},
		{map[string]int{"b": 1, "a": 2}, `{"a": 2, "b": 1}`},
		{"<&> \u00e9 \"q\" \n", `"<&> é \"q\" \n"`},
		{struct {
			A int `json:"a"`
		}{3}, `{"a":3}`},
		{[]any{nil, true, "x"}, `[null, true, "x"]`},
		{(*int)(nil), "null"},
	}
	for _, tc := range tests {
		got, err := MarshalJSON(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("MarshalJSON(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestConvert(t *testing.T) {
	type point struct {
		X int    `json:"x"`
		Y int    `json:"y"`
		L string `json:"label"`
	}
	t.Run("ok", func(t *testing.T) {
		var i int
		var f float32
		var s []int
		var m map[string]float64
		var p point
		var tm time.Time
		var d time.Duration
		var pp *int
		var u uint8
		for _, c := range []struct {
			v   any
			dst any
		}{
			{int64(5), &i}, {2.0, &i}, {int64(3), &f}, {[]any{int64(1), 2.0}, &s},
			{map[string]any{"a": int64(1)}, &m}, {map[string]any{"x": int64(1), "y": int64(2), "label": "p"}, &p},
			{"2026-01-01T00:00:00Z", &tm}, {1.5, &d}, {int64(9), &pp}, {int64(255), &u},
		} {
			if err := Convert(c.v, c.dst); err != nil {
				t.Errorf("Convert(%v, %T): %v", c.v, c.dst, err)
			}
		}
		if i != 2 || f != 3 || !cmp.Equal(s, []int{1, 2}) || m["a"] != 1 || p != (point{1, 2, "p"}) ||
			tm.Year() != 2026 || d != 1500*time.Millisecond || *pp != 9 || u != 255 {
			t.Errorf("values wrong: %v %v %v %v %v %v %v %v %v", i, f, s, m, p, tm, d, *pp, u)
		}
	})
	t.Run("errors", func(t *testing.T) {
		var i int
		var i8 int8
		var u uint
		var s string
		var p point
		var arr [2]int
		for _, c := range []struct {
			v    any
			dst  any
			want string
		}{
			{"abc", &i, "expected int, got a string"},
			{2.5, &i, "has a fraction"},
			{int64(300), &i8, "out of range"},
			{int64(-1), &u, "expected uint"},
			{int64(1), &s, "expected string"},
			{[]any{int64(1)}, &p, "filled from a mapping"},
			{map[string]any{"x": "no"}, &p, "field x"},
			{[]any{int64(1)}, &arr, "exactly 2"},
			{nil, &i, "expected int, got null"},
		} {
			err := Convert(c.v, c.dst)
			if err == nil || !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Convert(%v, %T) = %v, want error containing %q", c.v, c.dst, err, c.want)
			}
		}
	})
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"tasks.add", "tasks.add", true},
		{"tasks.*", "tasks.add", true},
		{"tasks.*", "tasks.sub.x", true},
		{"*.add", "tasks.add", true},
		{"tasks.?dd", "tasks.add", true},
		{"tasks.*", "other.add", false},
		{"tasks.add", "tasks.adds", false},
		{"*", "", true},
	}
	for _, tc := range tests {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestKombuTypedEnvelopes(t *testing.T) {
	v, err := UnmarshalJSON([]byte(`[{"__type__": "datetime", "__value__": "2026-01-01T00:00:00+00:00"},
		{"__type__": "uuid", "__value__": {"hex": "0123456789abcdef0123456789abcdef"}},
		{"__type__": "bytes", "__value__": "hi"}, {"__type__": "base64", "__value__": "aGk="},
		{"__type__": "unknown", "__value__": 1}, 12345678901234567890, 123456789012345678901234]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"2026-01-01T00:00:00+00:00", "01234567-89ab-cdef-0123-456789abcdef", []byte("hi"), []byte("hi"),
		map[string]any{"__type__": "unknown", "__value__": int64(1)}, uint64(12345678901234567890), json.Number("123456789012345678901234")}
	if d := cmp.Diff(want, v); d != "" {
		t.Error(d)
	}
}
