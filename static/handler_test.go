package static

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	cssBody = strings.Repeat(".probe { color: rgb(12, 34, 56); margin: 0 auto; }\n", 40)
	jsBody  = strings.Repeat("function f(){ return 'celeriac static asset'; }\n", 60)
)

func randomBytes(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}

const testManifest = `{"paths": {"css/app.css": "css/app.0123456789ab.css", "js/app.js": "js/app.abcdefabcdef.js"}, "version": "1.0"}`

// fixture is a small collected static root.
func fixture(t testing.TB) string {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"css/app.0123456789ab.css": cssBody,
		"css/app.css":              cssBody,
		"js/app.abcdefabcdef.js":   jsBody,
		"js/app.js":                jsBody,
		"img/logo.png":             randomBytes(3000),
		"fonts/f.woff2":            randomBytes(2000),
		"data/small.json":          `{"a": 1}`,
		"docs/index.html":          "<h1>docs</h1>",
		"index.html":               "<h1>root</h1>",
		"staticfiles.json":         testManifest,
	})
	return root
}

// both runs f against the server's own listener (fast path) and against
// net/http serving the same handler.
func both(t *testing.T, cfg Config, f func(t *testing.T, base string, c *http.Client)) {
	_, fast, nethttp := newServer(t, cfg)
	c := newClient(t)
	for name, base := range map[string]string{"fast": fast, "nethttp": nethttp} {
		t.Run(name, func(t *testing.T) { f(t, base+cfg.Prefix, c) })
	}
}

func TestServeVariants(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		etags := map[string]string{}
		for _, enc := range []string{"br", "zstd", "gzip", ""} {
			hdr := map[string]string{}
			if enc != "" {
				hdr["Accept-Encoding"] = enc
			}
			r := do(t, c, "GET", base+"css/app.0123456789ab.css", hdr)
			if r.status != 200 {
				t.Fatalf("%s: status %d", enc, r.status)
			}
			if got := r.header.Get("Content-Encoding"); got != enc {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q", enc, got)
			}
			if got := string(decode(t, enc, r.body)); got != cssBody {
				t.Errorf("%s: decoded body differs from the file", enc)
			}
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
				t.Errorf("%s: Content-Length %s, body %d bytes", enc, cl, len(r.body))
			}
			if enc != "" && len(r.body) >= len(cssBody) {
				t.Errorf("%s variant (%d bytes) is not smaller than the file (%d)", enc, len(r.body), len(cssBody))
			}
			if v := r.header.Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("%s: Vary %q", enc, v)
			}
			if cc := r.header.Get("Cache-Control"); cc != cacheImmutable {
				t.Errorf("%s: Cache-Control %q", enc, cc)
			}
			etags[r.header.Get("Etag")] = enc
		}
		if len(etags) != 4 {
			t.Errorf("want a distinct ETag per representation, got %v", etags)
		}
	})
	// The variants were written next to the originals, with its mtime.
	fi, err := os.Stat(filepath.Join(root, "css/app.0123456789ab.css"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sfx := range []string{".br", ".zst", ".gz"} {
		vi, err := os.Stat(filepath.Join(root, "css/app.0123456789ab.css"+sfx))
		if err != nil {
			t.Errorf("variant not written: %v", err)
		} else if !vi.ModTime().Equal(fi.ModTime()) {
			t.Errorf("%s mtime %v, original %v", sfx, vi.ModTime(), fi.ModTime())
		}
	}
}

func TestServeNegotiation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		path, ae string
		status   int
		enc      string
		vary     bool
	}{
		{"css/app.css", "br;q=0.9, gzip", 200, "gzip", true},
		{"css/app.css", "br, gzip;q=0", 200, "br", true},
		{"css/app.css", "zstd;q=0.5, gzip;q=0.4", 200, "zstd", true},
		{"css/app.css", "identity;q=0, br", 200, "br", true},
		{"css/app.css", "x-gzip", 200, "gzip", true},
		{"css/app.css", "deflate", 200, "", true},
		{"css/app.css", "*;q=0", 406, "", true},
		{"img/logo.png", "br, gzip", 200, "", false}, // not compressible: no variants
		{"data/small.json", "br", 200, "", false},    // too small to pay
		{"fonts/f.woff2", "gzip", 200, "", false},    // already compressed
		{"img/logo.png", "identity;q=0", 406, "", false},
	}
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		for _, tc := range cases {
			t.Run(tc.path+" "+tc.ae, func(t *testing.T) {
				r := do(t, c, "GET", base+tc.path, map[string]string{"Accept-Encoding": tc.ae})
				if r.status != tc.status {
					t.Fatalf("status %d, want %d", r.status, tc.status)
				}
				if got := r.header.Get("Content-Encoding"); got != tc.enc {
					t.Errorf("Content-Encoding %q, want %q", got, tc.enc)
				}
				if got := r.header.Get("Vary") == "Accept-Encoding"; got != tc.vary {
					t.Errorf("Vary present %v, want %v", got, tc.vary)
				}
			})
		}
	})
}

func TestServeConditional(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		u := base + "css/app.0123456789ab.css"
		br := do(t, c, "GET", u, map[string]string{"Accept-Encoding": "br"})
		gz := do(t, c, "GET", u, map[string]string{"Accept-Encoding": "gzip"})
		etag, lm := br.header.Get("Etag"), br.header.Get("Last-Modified")
		past := time.Now().Add(-48 * time.Hour).UTC().Format(http.TimeFormat)
		future := time.Now().Add(48 * time.Hour).UTC().Format(http.TimeFormat)
		cases := []struct {
			name   string
			hdr    map[string]string
			status int
		}{
			{"if-none-match", map[string]string{"If-None-Match": etag}, 304},
			{"weak", map[string]string{"If-None-Match": "W/" + etag}, 304},
			{"list", map[string]string{"If-None-Match": `"nope", ` + etag}, 304},
			{"star", map[string]string{"If-None-Match": "*"}, 304},
			{"other variant's etag", map[string]string{"If-None-Match": gz.header.Get("Etag")}, 200},
			{"if-modified-since same", map[string]string{"If-Modified-Since": lm}, 304},
			{"if-modified-since past", map[string]string{"If-Modified-Since": past}, 200},
			{"inm wins over ims", map[string]string{"If-None-Match": `"nope"`, "If-Modified-Since": future}, 200},
			{"if-match ok", map[string]string{"If-Match": etag}, 200},
			{"if-match fails", map[string]string{"If-Match": `"nope"`}, 412},
			{"if-match weak fails", map[string]string{"If-Match": "W/" + etag}, 412},
			{"if-unmodified-since fails", map[string]string{"If-Unmodified-Since": past}, 412},
			{"if-unmodified-since ok", map[string]string{"If-Unmodified-Since": future}, 200},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tc.hdr["Accept-Encoding"] = "br"
				r := do(t, c, "GET", u, tc.hdr)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d", r.status, tc.status)
				}
				switch tc.status {
				case 304:
					if len(r.body) != 0 || r.header.Get("Etag") != etag || r.header.Get("Cache-Control") != cacheImmutable ||
						r.header.Get("Vary") != "Accept-Encoding" || r.header.Get("Content-Length") != "" {
						t.Errorf("bad 304: %v body %q", r.header, r.body)
					}
				case 412:
					if r.header.Get("Cache-Control") != cacheNoStore {
						t.Errorf("412 Cache-Control %q", r.header.Get("Cache-Control"))
					}
				}
			})
		}
	})
}

func TestServeRange(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	for _, mem := range []int64{0, -1} { // from memory, and from disk
		t.Run(fmt.Sprintf("memlimit=%d", mem), func(t *testing.T) {
			both(t, Config{Root: root, Prefix: "/static/", MemoryFileLimit: mem, Variants: VariantsMemory},
				func(t *testing.T, base string, c *http.Client) {
					u := base + "js/app.abcdefabcdef.js"
					full := do(t, c, "GET", u, nil)
					n := len(jsBody)
					cases := []struct {
						rng, ifRange string
						status       int
						body         string
						cr           string
					}{
						{"bytes=0-9", "", 206, jsBody[:10], fmt.Sprintf("bytes 0-9/%d", n)},
						{"bytes=-5", "", 206, jsBody[n-5:], fmt.Sprintf("bytes %d-%d/%d", n-5, n-1, n)},
						{"bytes=10-", "", 206, jsBody[10:], fmt.Sprintf("bytes 10-%d/%d", n-1, n)},
						{fmt.Sprintf("bytes=%d-", n+10), "", 416, "", fmt.Sprintf("bytes */%d", n)},
						{"bytes=0-9", full.header.Get("Etag"), 206, jsBody[:10], fmt.Sprintf("bytes 0-9/%d", n)},
						{"bytes=0-9", `"old"`, 200, jsBody, ""},
						{"furlongs=0-9", "", 200, jsBody, ""}, // unknown unit: ignored
					}
					for _, tc := range cases {
						t.Run(tc.rng+tc.ifRange, func(t *testing.T) {
							hdr := map[string]string{"Range": tc.rng, "Accept-Encoding": "br, gzip"}
							if !strings.HasPrefix(tc.rng, "bytes=") {
								delete(hdr, "Accept-Encoding") // an ignored Range negotiates as usual
							}
							if tc.ifRange != "" {
								hdr["If-Range"] = tc.ifRange
							}
							r := do(t, c, "GET", u, hdr)
							if r.status != tc.status {
								t.Fatalf("status %d, want %d", r.status, tc.status)
							}
							if ce := r.header.Get("Content-Encoding"); ce != "" {
								t.Errorf("a Range request got Content-Encoding %q; want identity", ce)
							}
							if tc.status != 416 && string(r.body) != tc.body {
								t.Errorf("body %q…, want %q…", trunc(r.body), trunc([]byte(tc.body)))
							}
							if got := r.header.Get("Content-Range"); got != tc.cr {
								t.Errorf("Content-Range %q, want %q", got, tc.cr)
							}
							if tc.status == 416 && r.header.Get("Cache-Control") != cacheNoStore {
								t.Errorf("416 Cache-Control %q", r.header.Get("Cache-Control"))
							}
						})
					}
					t.Run("multipart", func(t *testing.T) {
						r := do(t, c, "GET", u, map[string]string{"Range": "bytes=0-1,5-6"})
						mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
						if r.status != 206 || mt != "multipart/byteranges" {
							t.Fatalf("status %d type %q", r.status, mt)
						}
					})
				})
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 20 {
		b = b[:20]
	}
	return string(b)
}

func TestServeHeadAndMethods(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		u := base + "css/app.0123456789ab.css"
		get := do(t, c, "GET", u, map[string]string{"Accept-Encoding": "gzip"})
		head := do(t, c, "HEAD", u, map[string]string{"Accept-Encoding": "gzip"})
		if head.status != 200 || len(head.body) != 0 {
			t.Fatalf("HEAD: status %d, %d body bytes", head.status, len(head.body))
		}
		for _, k := range []string{"Content-Length", "Content-Encoding", "Etag", "Content-Type", "Cache-Control"} {
			if head.header.Get(k) != get.header.Get(k) {
				t.Errorf("HEAD %s %q, GET %q", k, head.header.Get(k), get.header.Get(k))
			}
		}
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"} {
			r := do(t, c, m, u, nil)
			if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" || r.header.Get("Cache-Control") != cacheNoStore {
				t.Errorf("%s: status %d Allow %q Cache-Control %q", m, r.status, r.header.Get("Allow"), r.header.Get("Cache-Control"))
			}
		}
	})
}

func TestServeCachingAndTypes(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	cases := []struct {
		path   string
		status int
		cache  string
		ctype  string
	}{
		{"css/app.0123456789ab.css", 200, cacheImmutable, "text/css; charset=utf-8"},
		{"js/app.abcdefabcdef.js", 200, cacheImmutable, "text/javascript; charset=utf-8"},
		{"css/app.css", 200, "public, max-age=300", "text/css; charset=utf-8"},
		{"staticfiles.json", 200, "public, max-age=300", "application/json"},
		{"img/logo.png", 200, "public, max-age=300", "image/png"},
		{"fonts/f.woff2", 200, "public, max-age=300", "font/woff2"},
		{"docs/index.html", 200, "public, max-age=300", "text/html; charset=utf-8"},
		{"css/app.fedcba987654.css", 404, cacheNoStore, "text/plain; charset=utf-8"}, // unknown hashed name
		{"css/missing.css", 404, cacheNoStore, "text/plain; charset=utf-8"},
		{"css/app.0123456789ab.css.br", 404, cacheNoStore, "text/plain; charset=utf-8"}, // variants are not resources
	}
	both(t, Config{Root: root, Prefix: "/static/", MaxAge: 5 * time.Minute, CORS: "https://app.example"},
		func(t *testing.T, base string, c *http.Client) {
			for _, tc := range cases {
				t.Run(tc.path, func(t *testing.T) {
					r := do(t, c, "GET", base+tc.path, nil)
					if r.status != tc.status || r.header.Get("Cache-Control") != tc.cache || r.header.Get("Content-Type") != tc.ctype {
						t.Errorf("got %d %q %q, want %d %q %q", r.status, r.header.Get("Cache-Control"),
							r.header.Get("Content-Type"), tc.status, tc.cache, tc.ctype)
					}
					if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
						t.Errorf("CORS header %q", r.header.Get("Access-Control-Allow-Origin"))
					}
					if r.header.Get("X-Content-Type-Options") != "nosniff" {
						t.Errorf("no nosniff")
					}
				})
			}
		})
}

func TestServeIndexFile(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/", IndexFile: "index.html"}, func(t *testing.T, base string, c *http.Client) {
		if r := do(t, c, "GET", base+"docs/", nil); r.status != 200 || string(r.body) != "<h1>docs</h1>" {
			t.Errorf("docs/: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", base, nil); r.status != 200 || string(r.body) != "<h1>root</h1>" {
			t.Errorf("root: %d %q", r.status, r.body)
		}
		if r := do(t, c, "GET", base+"docs?x=1", nil); r.status != 301 || r.header.Get("Location") != "docs/?x=1" {
			t.Errorf("docs: %d Location %q", r.status, r.header.Get("Location"))
		}
		if r := do(t, c, "GET", base+"css/", nil); r.status != 404 {
			t.Errorf("css/ without index: %d", r.status)
		}
	})
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		if r := do(t, c, "GET", base+"docs/", nil); r.status != 404 {
			t.Errorf("index files off: docs/ gave %d", r.status)
		}
	})
}

// TestServeChangedUnderIndex: a file rewritten on disk (same size) while
// the index still describes the old one must not go out under the old
// ETag: the server notices at open time and rescans.
func TestServeChangedUnderIndex(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	both(t, Config{Root: root, Prefix: "/static/", MemoryFileLimit: -1, Variants: VariantsMemory},
		func(t *testing.T, base string, c *http.Client) {
			u := base + "img/logo.png"
			before := do(t, c, "GET", u, nil)
			newBody := randomBytes(3000)
			p := filepath.Join(root, "img/logo.png")
			if err := os.WriteFile(p, []byte(newBody), 0o644); err != nil {
				t.Fatal(err)
			}
			mt := time.Now().Add(time.Duration(len(t.Name())) * time.Second)
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			after := do(t, c, "GET", u, nil)
			if after.status != 200 || !bytes.Equal(after.body, []byte(newBody)) {
				t.Fatalf("status %d, new content served: %v", after.status, bytes.Equal(after.body, []byte(newBody)))
			}
			if after.header.Get("Etag") == before.header.Get("Etag") {
				t.Errorf("changed file served under the old ETag")
			}
		})
}
