package static

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/celeriac/celeriac/internal/testenv"
)

// copyAssets copies testdata/assets (the Django project's source static
// files) to a temporary directory a test may edit.
func copyAssets(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("testdata/assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata/assets", p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		writeTree(t, dst, map[string]string{filepath.ToSlash(rel): string(data)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// collectstatic runs Debian's Django collectstatic with
// ManifestStaticFilesStorage from assets into root.
func collectstatic(t testing.TB, assets, root string, clear bool) *Manifest {
	t.Helper()
	py := testenv.Python(t, "django")
	settings, err := filepath.Abs("testdata/django")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-m", "django", "collectstatic", "--noinput"}
	if clear {
		args = append(args, "--clear")
	}
	cmd := exec.Command(py, args...)
	cmd.Env = append(os.Environ(), "DJANGO_SETTINGS_MODULE=celeriac_static_settings", "PYTHONPATH="+settings,
		"CELERIAC_STATIC_ROOT="+root, "CELERIAC_ASSETS="+assets)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(root, "staticfiles.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDjangoCollectstatic serves a real collectstatic output.
func TestDjangoCollectstatic(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m := collectstatic(t, copyAssets(t), root, false)
	if len(m.Paths) != 3 {
		t.Fatalf("manifest: %v", m.Paths)
	}
	both(t, Config{Root: root, Prefix: "/static/"}, func(t *testing.T, base string, c *http.Client) {
		for orig, hashed := range m.Paths {
			want := readFile(t, filepath.Join(root, hashed))
			for _, enc := range []string{"", "br", "gzip", "zstd"} {
				r := do(t, c, "GET", base+hashed, map[string]string{"Accept-Encoding": enc})
				if r.status != 200 || string(decode(t, r.header.Get("Content-Encoding"), r.body)) != want {
					t.Fatalf("%s (%s): status %d or wrong body", hashed, enc, r.status)
				}
				if r.header.Get("Cache-Control") != cacheImmutable {
					t.Errorf("%s: Cache-Control %q", hashed, r.header.Get("Cache-Control"))
				}
			}
			r := do(t, c, "GET", base+orig, nil)
			if r.status != 200 || r.header.Get("Cache-Control") != "public, max-age=60" {
				t.Errorf("%s: %d %q", orig, r.status, r.header.Get("Cache-Control"))
			}
		}
		// The stylesheet names the hashed image; it is there, and immutable.
		css := readFile(t, filepath.Join(root, m.Paths["css/app.css"]))
		if !strings.Contains(css, m.Paths["img/dot.png"][len("img/"):]) {
			t.Fatalf("collectstatic did not rewrite url(): %s", css)
		}
		if r := do(t, c, "GET", base+m.Paths["img/dot.png"], nil); r.status != 200 || r.header.Get("Content-Type") != "image/png" {
			t.Errorf("image: %d %q", r.status, r.header.Get("Content-Type"))
		}
	})
}

// TestRollingDeploy runs collectstatic twice (the second with --clear, as a
// fresh release does) and checks that the first release's hashed names
// still serve from the store, with their variants, while a server keeping
// only the current manifest 404s them; then a third release pushes the
// first out of a two-manifest window.
func TestRollingDeploy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root, assets, store := t.TempDir(), copyAssets(t), t.TempDir()
	v1 := collectstatic(t, assets, root, false)
	v1css := readFile(t, filepath.Join(root, v1.Paths["css/app.css"]))

	keep2, fast2, _ := newServer(t, Config{Root: root, Prefix: "/static/", KeepManifests: 2, Store: store})
	keep1, fast1, _ := newServer(t, Config{Root: root, Prefix: "/static/", KeepManifests: 1})
	c := newClient(t)

	release := func(n int) *Manifest {
		writeTree(t, assets, map[string]string{
			"css/app.css": readFile(t, filepath.Join(assets, "css/app.css")) + "\n.release-" + string(rune('0'+n)) + " { color: red; }\n",
			"js/app.js":   readFile(t, filepath.Join(assets, "js/app.js")) + "\n// release " + string(rune('0'+n)) + "\n",
		})
		m := collectstatic(t, assets, root, true)
		for _, s := range []*Server{keep2, keep1} {
			if err := s.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	v2 := release(2)
	if v2.Paths["css/app.css"] == v1.Paths["css/app.css"] {
		t.Fatal("the second release did not change the CSS hash")
	}
	if _, err := os.Stat(filepath.Join(root, v1.Paths["css/app.css"])); !os.IsNotExist(err) {
		t.Fatalf("collectstatic --clear left the old file: %v", err)
	}

	oldCSS := "/static/" + v1.Paths["css/app.css"]
	for _, enc := range []string{"", "br", "gzip"} {
		r := do(t, c, "GET", fast2+oldCSS, map[string]string{"Accept-Encoding": enc})
		if r.status != 200 || string(decode(t, r.header.Get("Content-Encoding"), r.body)) != v1css {
			t.Fatalf("previous release's CSS (%q): status %d", enc, r.status)
		}
		if r.header.Get("Content-Encoding") != enc || r.header.Get("Cache-Control") != cacheImmutable {
			t.Errorf("previous release's CSS (%q): Content-Encoding %q, Cache-Control %q", enc,
				r.header.Get("Content-Encoding"), r.header.Get("Cache-Control"))
		}
	}
	for name, hashed := range v2.Paths {
		if r := do(t, c, "GET", fast2+"/static/"+hashed, nil); r.status != 200 || r.header.Get("Cache-Control") != cacheImmutable {
			t.Errorf("current %s: %d", name, r.status)
		}
	}
	if r := do(t, c, "GET", fast1+oldCSS, nil); r.status != 404 || r.header.Get("Cache-Control") != cacheNoStore {
		t.Errorf("keep-manifests 1: previous CSS gave %d %q, want a no-store 404", r.status, r.header.Get("Cache-Control"))
	}
	if r := do(t, c, "GET", fast2+"/static/css/app.00000000beef.css", nil); r.status != 404 || r.header.Get("Cache-Control") != cacheNoStore {
		t.Errorf("unknown hashed name: %d %q", r.status, r.header.Get("Cache-Control"))
	}

	// Release 3: a window of two keeps releases 2 and 3; release 1's
	// objects are collected once no record references them.
	keep2.store.grace = 0
	v3 := release(3)
	if r := do(t, c, "GET", fast2+oldCSS, nil); r.status != 404 {
		t.Errorf("release 1 CSS after release 3 with keep 2: %d", r.status)
	}
	for _, m := range []*Manifest{v2, v3} {
		if r := do(t, c, "GET", fast2+"/static/"+m.Paths["css/app.css"], nil); r.status != 200 {
			t.Errorf("%s: %d", m.Paths["css/app.css"], r.status)
		}
	}
	objects := 0
	_ = filepath.WalkDir(filepath.Join(store, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(d.Name(), ".") {
			objects++
		}
		return nil
	})
	// Releases 2 and 3 share the image; CSS and JS differ: 1 + 2 + 2.
	if objects != 5 {
		t.Errorf("store holds %d objects, want 5", objects)
	}
}

// TestSharedStore: two instances serving different releases share a store.
// The old instance serves the new release's hashed names (its pages reach
// it mid-deploy), and the new one the old release's.
func TestSharedStore(t *testing.T) {
	t.Parallel()
	store, assets := t.TempDir(), copyAssets(t)
	root1, root2 := t.TempDir(), t.TempDir()
	v1 := collectstatic(t, assets, root1, false)
	_, old, _ := newServer(t, Config{Root: root1, Prefix: "/static/", Store: store})
	writeTree(t, assets, map[string]string{"js/app.js": readFile(t, filepath.Join(assets, "js/app.js")) + "\n// v2\n"})
	v2 := collectstatic(t, assets, root2, false)
	_, cur, _ := newServer(t, Config{Root: root2, Prefix: "/static/", Store: store})
	c := newClient(t)
	if r := do(t, c, "GET", old+"/static/"+v2.Paths["js/app.js"], nil); r.status != 200 ||
		r.body == nil || string(r.body) != readFile(t, filepath.Join(root2, v2.Paths["js/app.js"])) {
		t.Errorf("old instance, new release's JS: %d", r.status)
	}
	if r := do(t, c, "GET", cur+"/static/"+v1.Paths["js/app.js"], nil); r.status != 200 {
		t.Errorf("new instance, old release's JS: %d", r.status)
	}
}
