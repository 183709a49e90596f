package static

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestResolvePath(t *testing.T) {
	t.Parallel()
	cases := []struct {
		prefix, raw string
		name        string
		dir         bool
		v           pathVerdict
	}{
		{"/static/", "/static/css/app.css", "css/app.css", false, pathOK},
		{"/static/", "/static/", "", true, pathOK},
		{"/static/", "/static/docs/", "docs", true, pathOK},
		{"/static/", "/static", "", false, pathNotFound},
		{"/static/", "/other/app.css", "", false, pathNotFound},
		{"/", "/app%20name.css", "app name.css", false, pathOK},
		{"/", "/caf%C3%A9.css", "café.css", false, pathOK},
		{"/", "/.well-known/security.txt", ".well-known/security.txt", false, pathOK},
		{"/", "/.env", "", false, pathNotFound},
		{"/", "/a/.git/config", "", false, pathNotFound},
		{"/", "/../etc/passwd", "", false, pathBad},
		{"/", "/a/../b", "", false, pathBad},
		{"/", "/a/./b", "", false, pathBad},
		{"/", "/%2e%2e/etc/passwd", "", false, pathBad},
		{"/", "/a%2fb", "", false, pathBad},
		{"/", "/a%2Fb", "", false, pathBad},
		{"/", "/a%5cb", "", false, pathBad},
		{"/", "/a\\b", "", false, pathBad},
		{"/", "/a%00b", "", false, pathBad},
		{"/", "//etc/passwd", "", false, pathBad},
		{"/", "/a//b", "", false, pathBad},
		{"/", "/a%0ab", "", false, pathBad},
		{"/", "/%c0%ae%c0%ae/x", "", false, pathBad}, // overlong UTF-8 dots
		{"/", "/%ff", "", false, pathBad},
		{"/", "/%252e%252e/x", "%2e%2e/x", false, pathOK}, // literal name, cannot climb
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.raw)
			if err != nil {
				t.Fatalf("bad test URL %q: %v", tc.raw, err)
			}
			name, dir, v := resolvePath(tc.prefix, u.Path, u.EscapedPath())
			if v != tc.v || name != tc.name || dir != tc.dir {
				t.Errorf("resolvePath(%q) = (%q, %v, %d), want (%q, %v, %d)", tc.raw, name, dir, v, tc.name, tc.dir, tc.v)
			}
		})
	}
}

func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"/static/a.css", "/static/../x", "/static/%2e%2e/x", "/static/a\\b", "/static//x", "/static/.env/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			return
		}
		name, _, v := resolvePath("/static/", u.Path, u.EscapedPath())
		if v != pathOK || name == "" {
			return
		}
		// Whatever is accepted is a clean relative path that cannot climb.
		if path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") ||
			strings.ContainsRune(name, 0) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("resolvePath(%q) accepted unsafe name %q", raw, name)
		}
	})
}
