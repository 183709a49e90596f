package static

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

// TestChromium loads a page that uses collectstatic's hashed CSS and JS in
// Debian's headless Chromium, through the fast path, and checks that the
// browser decoded and applied them (the page writes what it saw into the
// DOM) and that the server sent them compressed and immutable.
func TestChromium(t *testing.T) {
	t.Parallel()
	chromium := testenv.Program(t, "chromium")
	root := t.TempDir()
	m := collectstatic(t, copyAssets(t), root, false)
	css, js, img := m.Paths["css/app.css"], m.Paths["js/app.js"], m.Paths["img/dot.png"]
	writeTree(t, root, map[string]string{"page.html": fmt.Sprintf(`<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/%s">
<script src="/static/%s"></script>
</head><body>
<div id="probe" class="probe"></div>
<pre id="out">pending</pre>
<script>
window.addEventListener("load", function () {
  var cs = getComputedStyle(document.getElementById("probe"));
  document.getElementById("out").textContent = "color=" + cs.color + ";app=" +
    (window.celeriacApp ? window.celeriacApp.sum : "missing") + ";bg=" + cs.backgroundImage;
});
</script>
</body></html>`, css, js)})

	logs := &logCapture{}
	_, fast, _ := newServer(t, Config{Root: root, Prefix: "/static/", KeepManifests: 1, AccessLog: slog.New(logs)})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(t.TempDir(), "profile"),
		"--virtual-time-budget=5000", "--dump-dom", fast+"/static/page.html")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.Unavailable(t, "chromium failed: %v\n%s", err, tail(stderr.String(), 2000))
	}
	dom := string(out)
	want := "color=rgb(12, 34, 56);app=42;bg=url(\"" + fast + "/static/" + img + "\")"
	if !strings.Contains(dom, want) {
		t.Fatalf("page did not see the assets; want %q in:\n%s", want, dom)
	}

	seen := map[string]map[string]string{}
	for _, r := range logs.records() {
		t.Logf("server saw: %v", r)
		seen[strings.TrimPrefix(r["path"], "/static/")] = r
	}
	for _, name := range []string{css, js} {
		r := seen[name]
		if r == nil {
			t.Fatalf("server never saw %s; saw %v", name, logs.records())
		}
		if r["status"] != "200" || (r["encoding"] != "br" && r["encoding"] != "zstd") ||
			!strings.Contains(r["accept_encoding"], "br") || r["cache_control"] != cacheImmutable {
			t.Errorf("%s: %v", name, r)
		}
	}
	if r := seen[img]; r == nil || r["status"] != "200" {
		t.Errorf("CSS background image: %v", r)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
