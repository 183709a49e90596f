package static

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReloadPicksUpChanges: with inotify and with polling, a new file, a
// changed file and a removed file are all noticed without a restart, and a
// new collectstatic release's hashed names become servable.
func TestReloadPicksUpChanges(t *testing.T) {
	t.Parallel()
	for _, mode := range []ReloadMode{ReloadWatch, ReloadPoll} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			root := fixture(t)
			_, fast, _ := newServer(t, Config{Root: root, Prefix: "/static/", Reload: mode, PollInterval: 50 * time.Millisecond})
			c := newClient(t)
			get := func(name string) result { return do(t, c, "GET", fast+"/static/"+name, nil) }

			writeTree(t, root, map[string]string{"new/added.css": cssBody + "/* added */"})
			eventually(t, 10*time.Second, "a new file to be served", func() bool { return get("new/added.css").status == 200 })

			writeTree(t, root, map[string]string{"css/app.css": "changed"})
			eventually(t, 10*time.Second, "a changed file to be served", func() bool { return string(get("css/app.css").body) == "changed" })

			if err := os.Remove(filepath.Join(root, "data/small.json")); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "a removed file to 404", func() bool { return get("data/small.json").status == 404 })

			writeTree(t, root, map[string]string{
				"js/app.fedcba654321.js": jsBody + "//2",
				"staticfiles.json":       `{"paths": {"js/app.js": "js/app.fedcba654321.js"}, "version": "1.1", "hash": "x"}`,
			})
			eventually(t, 10*time.Second, "the new manifest's names to be immutable", func() bool {
				r := get("js/app.fedcba654321.js")
				return r.status == 200 && r.header.Get("Cache-Control") == cacheImmutable
			})
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	file := filepath.Join(root, "f")
	writeTree(t, root, map[string]string{"f": "x"})
	cases := []struct {
		field string
		cfg   Config
	}{
		{"Root", Config{}},
		{"Root", Config{Root: filepath.Join(root, "missing")}},
		{"Root", Config{Root: file}},
		{"Prefix", Config{Root: root, Prefix: "static/"}},
		{"Prefix", Config{Root: root, Prefix: "/static"}},
		{"Prefix", Config{Root: root, Prefix: "/a/../b/"}},
		{"KeepManifests", Config{Root: root, KeepManifests: -1}},
		{"Store", Config{Root: root, Store: filepath.Join(root, "store")}},
		{"Store", Config{Root: root, Store: file + "/sub"}},
		{"CORS", Config{Root: root, CORS: "*\r\nX-Evil: 1"}},
		{"IndexFile", Config{Root: root, IndexFile: "../index.html"}},
		{"Variants", Config{Root: root, Variants: "disk"}},
		{"Encodings", Config{Root: root, Encodings: []string{"deflate"}}},
		{"Reload", Config{Root: root, Reload: "inotify"}},
		{"PollInterval", Config{Root: root, PollInterval: time.Microsecond}},
		{"Manifest", Config{Root: root, Manifest: "missing.json", KeepManifests: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want a ConfigError for %s", err, tc.field)
			}
		})
	}
	// A manifest that exists but is broken fails start-up too.
	writeTree(t, root, map[string]string{"staticfiles.json": `{"paths": `})
	if _, err := New(context.Background(), Config{Root: root, KeepManifests: 1}); !errors.Is(err, ErrBadManifest) {
		t.Errorf("broken manifest: %v", err)
	}
}

// TestLifecycle: Start twice, Shutdown twice, serving stops, and a slow
// idle keep-alive connection does not hold Shutdown up.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	ctx := context.Background()
	s, err := New(ctx, Config{Root: root, Listen: "127.0.0.1:0", KeepManifests: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	c := newClient(t)
	url := "http://" + s.Addr().String() + "/css/app.css"
	if r := do(t, c, "GET", url, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	} // leaves an idle keep-alive connection
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Shutdown(sctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := c.Get(url); err == nil {
		t.Errorf("still serving after Shutdown")
	}
	if err := s.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Shutdown: %v", err)
	}
	var _ http.Handler = s
}

// TestVariantModes: memory mode writes nothing; existing mode creates
// nothing but serves siblings already there; a stale sibling (older than
// its original) is never served.
func TestVariantModes(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		root := fixture(t)
		s, _, httpURL := newServer(t, Config{Root: root, Variants: VariantsMemory})
		if _, err := os.Stat(filepath.Join(root, "css/app.css.br")); !os.IsNotExist(err) {
			t.Errorf("memory mode wrote a variant: %v", err)
		}
		if n := len(s.idx.Load().files["css/app.css"].reps); n != 4 {
			t.Errorf("%d representations, want 4", n)
		}
		r := do(t, newClient(t), "GET", httpURL+"/css/app.css", map[string]string{"Accept-Encoding": "br"})
		if r.header.Get("Content-Encoding") != "br" || string(decode(t, "br", r.body)) != cssBody {
			t.Errorf("memory br variant not served")
		}
	})
	t.Run("existing and stale", func(t *testing.T) {
		root := fixture(t)
		gz, err := compress(codingGzip, []byte(cssBody))
		if err != nil {
			t.Fatal(err)
		}
		writeTree(t, root, map[string]string{"css/app.css.gz": string(gz), "js/app.js.gz": "stale bytes"})
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(filepath.Join(root, "js/app.js.gz"), old, old); err != nil {
			t.Fatal(err)
		}
		_, _, httpURL := newServer(t, Config{Root: root, Variants: VariantsExisting})
		c := newClient(t)
		if r := do(t, c, "GET", httpURL+"/css/app.css", map[string]string{"Accept-Encoding": "br, gzip"}); r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("existing .gz not served: %q", r.header.Get("Content-Encoding"))
		}
		if r := do(t, c, "GET", httpURL+"/js/app.js", map[string]string{"Accept-Encoding": "gzip"}); r.header.Get("Content-Encoding") != "" || string(r.body) != jsBody {
			t.Errorf("stale .gz served: %q", r.header.Get("Content-Encoding"))
		}
		if _, err := os.Stat(filepath.Join(root, "css/app.css.br")); !os.IsNotExist(err) {
			t.Errorf("existing mode created a variant")
		}
	})
}
