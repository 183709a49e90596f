package static

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAcceptEncoding(t *testing.T) {
	t.Parallel()
	// want is {identity, br, zstd, gzip} in thousandths.
	cases := []struct {
		name    string
		header  string
		present bool
		want    acceptQ
	}{
		{"absent", "", false, acceptQ{1000, 0, 0, 0}},
		{"empty", "", true, acceptQ{1, 0, 0, 0}},
		{"browser", "gzip, deflate, br, zstd", true, acceptQ{1, 1000, 1000, 1000}},
		{"br gzip", "br, gzip", true, acceptQ{1, 1000, 0, 1000}},
		{"q values", "gzip;q=1.0, br;q=0.5, zstd;q=0.001", true, acceptQ{1, 500, 1, 1000}},
		{"q zero excludes", "br;q=0, gzip", true, acceptQ{1, 0, 0, 1000}},
		{"case and spaces", " GZip ; Q=0.8 ,\tBR\t", true, acceptQ{1, 1000, 0, 800}},
		{"x-gzip", "x-gzip", true, acceptQ{1, 0, 0, 1000}},
		{"star", "*", true, acceptQ{1000, 1000, 1000, 1000}},
		{"star with exclusion", "*;q=0.5, br;q=0", true, acceptQ{500, 0, 500, 500}},
		{"star zero excludes identity", "*;q=0", true, acceptQ{0, 0, 0, 0}},
		{"star zero but identity listed", "*;q=0, identity", true, acceptQ{1000, 0, 0, 0}},
		{"identity excluded", "identity;q=0, gzip", true, acceptQ{0, 0, 0, 1000}},
		{"malformed q ignored", "br;q=2, gzip;q=0.5", true, acceptQ{1, 0, 0, 500}},
		{"too many digits", "br;q=0.1234", true, acceptQ{1, 0, 0, 0}},
		{"one point nonzero", "br;q=1.5", true, acceptQ{1, 0, 0, 0}},
		{"other params", "br;level=5;q=0.3", true, acceptQ{1, 300, 0, 0}},
		{"duplicate keeps highest", "br;q=0.1, br;q=0.9", true, acceptQ{1, 900, 0, 0}},
		{"unknown codings", "deflate, compress, sdch", true, acceptQ{1, 0, 0, 0}},
		{"empty elements", ",,br,,", true, acceptQ{1, 1000, 0, 0}},
		{"implicit identity is the fallback", "zstd;q=0.5", true, acceptQ{1, 0, 500, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseAcceptEncoding(tc.header, tc.present)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseAcceptEncoding(%q) -want +got:\n%s", tc.header, diff)
			}
		})
	}
}

func TestChooseRepresentation(t *testing.T) {
	t.Parallel()
	f := &file{reps: []rep{
		{repContent: repContent{coding: identity, size: 1000}},
		{repContent: repContent{coding: codingBr, size: 200}},
		{repContent: repContent{coding: codingZstd, size: 230}},
		{repContent: repContent{coding: codingGzip, size: 250}},
	}}
	cases := []struct {
		name    string
		ae      string
		present bool
		rng     bool
		want    string // coding name, or "none"
	}{
		{"absent", "", false, false, "identity"},
		{"browser picks smallest", "gzip, deflate, br, zstd", true, false, "br"},
		{"q beats size", "gzip;q=1, br;q=0.5", true, false, "gzip"},
		{"br refused", "br;q=0, zstd, gzip", true, false, "zstd"},
		{"only gzip", "gzip", true, false, "gzip"},
		{"identity preferred by q", "identity, br;q=0.5", true, false, "identity"},
		{"range gets identity", "br, gzip", true, true, "identity"},
		{"range with identity refused negotiates", "br, identity;q=0", true, true, "br"},
		{"nothing acceptable", "identity;q=0, deflate", true, false, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := "none"
			if r := f.choose(tc.ae, tc.present, tc.rng); r != nil {
				got = r.coding.String()
			}
			if got != tc.want {
				t.Errorf("choose(%q, range=%v) = %s, want %s", tc.ae, tc.rng, got, tc.want)
			}
		})
	}
}

func TestETagMatch(t *testing.T) {
	t.Parallel()
	const tag = `"abc"`
	cases := []struct {
		header string
		weak   bool // etagMatch (If-None-Match)
		strong bool // strongMatch (If-Match)
	}{
		{`"abc"`, true, true},
		{`W/"abc"`, true, false},
		{`"x", "abc"`, true, true},
		{`"x",W/"abc"`, true, false},
		{`*`, true, true},
		{`"abcd"`, false, false},
		{`abc`, false, false},
		{``, false, false},
		{`"abc`, false, false},
		{`"x", junk, "abc"`, false, false},
		{` , "abc" `, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			if got := etagMatch(tc.header, tag); got != tc.weak {
				t.Errorf("etagMatch(%q) = %v, want %v", tc.header, got, tc.weak)
			}
			if got := strongMatch(tc.header, tag); got != tc.strong {
				t.Errorf("strongMatch(%q) = %v, want %v", tc.header, got, tc.strong)
			}
		})
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip, deflate, br, zstd", "*;q=0", "br;q=0.5, identity;q=0", "x-gzip;q=1.000", ";;,,=q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		q := parseAcceptEncoding(h, true)
		for c, v := range q {
			if v < 0 || v > 1000 {
				t.Fatalf("q[%v] = %d out of range for %q", coding(c), v, h)
			}
		}
		// Identity is only refused by an explicit q=0.
		if q[identity] == 0 && !containsFold(h, "q=0") && !containsFold(h, "q=0.") {
			t.Fatalf("identity refused without q=0 in %q", h)
		}
	})
}

func FuzzETagMatch(f *testing.F) {
	for _, s := range []string{`"a", W/"b"`, `*`, `W/`, `"`, `,,,`} {
		f.Add(s, `"b"`)
	}
	f.Fuzz(func(t *testing.T, header, tag string) {
		weak, strong := etagMatch(header, tag), strongMatch(header, tag)
		if strong && !weak {
			t.Fatalf("strong match without weak match: %q vs %q", header, tag)
		}
	})
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if eqFold([]byte(s[i:i+len(sub)]), sub) {
			return true
		}
	}
	return false
}
