package static

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPathSafety sends hostile request targets, byte for byte, to both
// serving paths. Every one must be refused (400 or 404) without a byte of
// a file outside the root, or of a hidden file inside it.
func TestPathSafety(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeTree(t, base, map[string]string{
		"secret.txt":         "SECRET-OUTSIDE",
		"root/css/app.css":   cssBody,
		"root/.env":          "SECRET-DOTENV",
		"root/.git/config":   "SECRET-GIT",
		"root/sub/.htpasswd": "SECRET-HTPASSWD",
	})
	for link, target := range map[string]string{
		"root/link-out":    "../secret.txt",
		"root/abs-link":    filepath.Join(base, "secret.txt"),
		"root/dirlink":     "..",
		"root/inside-link": "css/app.css",
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, fast, nethttp := newServer(t, Config{Root: root, Prefix: "/static/", KeepManifests: 1})

	// Symlinks leading out of the root are not even in the index.
	for _, name := range []string{"link-out", "abs-link", "dirlink/secret.txt", ".env", ".git/config"} {
		if s.idx.Load().files[name] != nil {
			t.Errorf("%s is in the index", name)
		}
	}

	targets := []string{
		"/static/../secret.txt",
		"/static/..%2fsecret.txt",
		"/static/%2e%2e/secret.txt",
		"/static/%2E%2E/secret.txt",
		"/static/%2e%2e%2fsecret.txt",
		"/static/.%2e/secret.txt",
		"/static/%2e./secret.txt",
		`/static/..\secret.txt`,
		"/static/..%5csecret.txt",
		"/static/%5c..%5csecret.txt",
		"/static/css/..%00/secret.txt",
		"/static/css/app.css%00.png",
		"/static/%c0%ae%c0%ae/secret.txt",
		"/static/%e0%80%ae%e0%80%ae/secret.txt",
		"/static/..%c0%af/secret.txt",
		"/static/%252e%252e/secret.txt",
		"/static/%252e%252e%252fsecret.txt",
		"/static/link-out",
		"/static/abs-link",
		"/static/dirlink/secret.txt",
		"/static/dirlink/root/.env",
		"/static/.env",
		"/static/.git/config",
		"/static/sub/.htpasswd",
		"/static/css/../.env",
		"/static/css/./../../secret.txt",
		"/static/css/app.css/../../secret.txt",
		"/static/css%2f..%2f..%2fsecret.txt",
		"/static//etc/passwd",
		"/static/%2fetc%2fpasswd",
		"/static/....//secret.txt",
		"/static/..;/secret.txt",
		"/static/%u002e%u002e/secret.txt",
		"/static/secret.txt",
		"/../../../../etc/passwd",
		"//static/../secret.txt",
		"/etc/passwd",
		"http://localhost/static/../secret.txt",
		`\static\..\secret.txt`,
		"static/../secret.txt",
		"/static/.%2e/.%2e/secret.txt?x=/../..",
		"/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
	}
	if len(targets) < 30 {
		t.Fatalf("only %d hostile requests", len(targets))
	}
	for name, url := range map[string]string{"fast": fast, "nethttp": nethttp} {
		addr := strings.TrimPrefix(url, "http://")
		t.Run(name, func(t *testing.T) {
			// Positive controls: the server does serve what it should.
			for _, ok := range []string{"/static/css/app.css", "/static/inside-link"} {
				resp, body := rawRequest(t, addr, "GET "+ok+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				if resp.StatusCode != 200 || string(body) != cssBody {
					t.Fatalf("control %s: status %d", ok, resp.StatusCode)
				}
			}
			for _, target := range targets {
				t.Run(target, func(t *testing.T) {
					resp, body := rawRequest(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					if resp.StatusCode != 400 && resp.StatusCode != 404 {
						t.Errorf("status %d, want 400 or 404", resp.StatusCode)
					}
					if strings.Contains(string(body), "SECRET") || strings.Contains(string(body), "root:") {
						t.Errorf("leaked: %q", body)
					}
					if resp.StatusCode == 404 && resp.Header.Get("Cache-Control") != cacheNoStore {
						t.Errorf("404 Cache-Control %q", resp.Header.Get("Cache-Control"))
					}
				})
			}
		})
	}
}
