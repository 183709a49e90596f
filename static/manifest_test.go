package static

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseManifest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		paths   map[string]string
		skipped []string
		err     bool
	}{
		{name: "django 3.2", in: `{"paths": {"css/app.css": "css/app.f2fcfe612a1d.css"}, "version": "1.0"}`,
			paths: map[string]string{"css/app.css": "css/app.f2fcfe612a1d.css"}},
		{name: "django 4.2 with hash", in: `{"paths": {"a.js": "a.0123456789ab.js"}, "extra": {}, "version": "1.1", "hash": "5ba8b4b3f2d4"}`,
			paths: map[string]string{"a.js": "a.0123456789ab.js"}},
		{name: "empty paths", in: `{"paths": {}, "version": "1.0"}`, paths: map[string]string{}},
		{name: "hostile entries dropped", in: `{"paths": {"ok.css": "ok.0123456789ab.css", "../x": "x.0123456789ab", "y": "/etc/passwd", "z": "a\\b", "h": ".env"}, "version": "1.0"}`,
			paths: map[string]string{"ok.css": "ok.0123456789ab.css"}, skipped: []string{"../x", "h", "y", "z"}},
		{name: "unknown version", in: `{"paths": {}, "version": "2.0"}`, err: true},
		{name: "no version", in: `{"paths": {}}`, err: true},
		{name: "no paths", in: `{"version": "1.0"}`, err: true},
		{name: "not json", in: `{"paths": `, err: true},
		{name: "wrong types", in: `{"paths": {"a": 1}, "version": "1.0"}`, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrBadManifest) {
					t.Fatalf("err = %v, want ErrBadManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.paths, m.Paths); diff != "" {
				t.Errorf("paths -want +got:\n%s", diff)
			}
			if diff := cmp.Diff(tc.skipped, m.Skipped); diff != "" {
				t.Errorf("skipped -want +got:\n%s", diff)
			}
		})
	}
}

func TestLooksHashed(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"css/app.f2fcfe612a1d.css":     true,
		"js/app.min.0123456789ab.js":   true,
		"LICENSE.0123456789ab":         true,
		"css/app.css":                  false,
		"a.0123456789AB.js":            false,
		"a.0123456789a.js":             false,
		".0123456789ab.js":             false,
		"dir.0123456789ab/app.css":     false,
		"x/0123456789ab.js":            false,
		"font.woff2.0123456789ab.woff": true,
	} {
		if got := looksHashed(name); got != want {
			t.Errorf("looksHashed(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"paths": {"css/app.css": "css/app.f2fcfe612a1d.css"}, "version": "1.0"}`))
	f.Add([]byte(`{"paths": {"../a": "b"}, "version": "1.1", "hash": "x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for k, v := range m.Paths {
			if !manifestName(k) || !manifestName(v) {
				t.Fatalf("unsafe entry kept: %q: %q", k, v)
			}
		}
	})
}
