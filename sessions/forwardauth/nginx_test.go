package forwardauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs examples/nginx/nginx.conf, with its addresses pointed at
// this test's servers, as a foreground child torn down at cleanup.
func startNginx(t *testing.T, authAddr, djangoAddr, appAddr string) string {
	t.Helper()
	bin := testenv.Program(t, "nginx")
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := string(src)
	for old, repl := range map[string]string{
		"server 127.0.0.1:8081;": "server " + authAddr + ";",
		"server 127.0.0.1:8000;": "server " + djangoAddr + ";",
		"server 127.0.0.1:8001;": "server " + appAddr + ";",
		"listen 8080;":           fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"worker_processes auto;": fmt.Sprintf("worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;", dir, dir),
		"http {": fmt.Sprintf("http {\n    access_log off;\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n"+
			"    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;", dir),
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("examples/nginx/nginx.conf no longer contains %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
			c.Close()
			return base
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s", err, log)
		case <-deadline:
			t.Fatal("nginx did not start listening")
		case <-tick.C:
		}
	}
}

// TestNginxAuthRequest runs real nginx with the example config in front of
// the forward-auth server.
func TestNginxAuthRequest(t *testing.T) {
	t.Parallel()
	db := userDB(t)
	srv, store := newServer(t, db)
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(ctx) })
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s hash=%s", r.Header.Get("X-User-Id"), r.Header.Get("X-Session-Hash"))
	}))
	t.Cleanup(app.Close)
	django := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "django "+r.URL.Path)
	}))
	t.Cleanup(django.Close)
	base := startNginx(t, srv.Addr().String(), strings.TrimPrefix(django.URL, "http://"), strings.TrimPrefix(app.URL, "http://"))

	good := loginCookie(t, store, authHash(password))
	stale := loginCookie(t, store, authHash("old"))
	sum := sha256.Sum256([]byte(good))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name     string
		path     string
		cookie   string
		spoof    string
		wantCode int
		wantBody string
		wantLoc  string
	}{
		{"logged in", "/app/page", good, "", 200, "user=42 hash=" + hex.EncodeToString(sum[:]), ""},
		{"spoofed header overwritten", "/app/page", good, "1", 200, "user=42 hash=" + hex.EncodeToString(sum[:]), ""},
		{"anonymous redirected to login", "/app/page?x=1", "", "", 302, "", "/accounts/login/?next=/app/page?x=1"},
		{"spoofed header without login", "/app/page", "", "1", 302, "", "/accounts/login/?next=/app/page"},
		{"stale password hash", "/app/page", stale, "", 302, "", "/accounts/login/?next=/app/page"},
		{"django pages pass through", "/accounts/login/", "", "", 200, "django /accounts/login/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "sessionid", Value: tc.cookie})
			}
			if tc.spoof != "" {
				req.Header.Set("X-User-Id", tc.spoof)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d (%s); want %d", resp.StatusCode, body, tc.wantCode)
			}
			if tc.wantBody != "" && string(body) != tc.wantBody {
				t.Fatalf("body %q; want %q", body, tc.wantBody)
			}
			if loc := resp.Header.Get("Location"); tc.wantLoc != "" && !strings.HasSuffix(loc, tc.wantLoc) {
				t.Fatalf("Location %q; want …%s", loc, tc.wantLoc)
			}
		})
	}
}
