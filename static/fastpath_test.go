package static

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFastPathMatchesNetHTTP sends the same raw requests to the fast path
// and to net/http running the same handler, and wants the same answers:
// status, headers (but Date) and body.
func TestFastPathMatchesNetHTTP(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	s, fast, nethttp := newServer(t, Config{Root: root, Prefix: "/static/", CORS: "*"})
	etag := s.idx.Load().files["css/app.0123456789ab.css"].reps[0].etag
	lm := s.idx.Load().files["css/app.0123456789ab.css"].mtime.UTC().Format(http.TimeFormat)
	reqs := []string{
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /static/css/app.0123456789ab.css?v=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: zstd;q=0.9, br;q=0.2\r\n\r\n",
		"HEAD /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: " + lm + "\r\n\r\n",
		"GET /static/css/app.css HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\nCookie: a=b\r\n\r\n",
		"GET /static/img/logo.png HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.0\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /static/missing.css HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /static/css/app.0123456789ab.css HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n",
		"POST /static/css/app.css HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
	}
	for _, req := range reqs {
		name := strings.SplitN(req, "\r\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			a, abody := rawRequest(t, strings.TrimPrefix(fast, "http://"), req)
			b, bbody := rawRequest(t, strings.TrimPrefix(nethttp, "http://"), req)
			if a.StatusCode != b.StatusCode {
				t.Fatalf("status: fast %d, net/http %d", a.StatusCode, b.StatusCode)
			}
			for _, h := range []http.Header{a.Header, b.Header} {
				h.Del("Date")
			}
			if diff := cmp.Diff(b.Header, a.Header); diff != "" {
				t.Errorf("headers -net/http +fast:\n%s", diff)
			}
			if string(abody) != string(bbody) {
				t.Errorf("bodies differ: %d vs %d bytes", len(abody), len(bbody))
			}
		})
	}
}

// TestFastPathConnection checks pipelining, a hand-off to net/http in the
// middle of a keep-alive connection (a Range request), and that the
// connection keeps working afterwards.
func TestFastPathConnection(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	_, fast, _ := newServer(t, Config{Root: root, Prefix: "/static/"})
	c, err := net.Dial("tcp", strings.TrimPrefix(fast, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	get := "GET /static/js/app.abcdefabcdef.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
	rng := "GET /static/js/app.abcdefabcdef.js HTTP/1.1\r\nHost: x\r\nRange: bytes=0-7\r\n\r\n"
	// Three pipelined requests in one write, the middle one handed off.
	if _, err := io.WriteString(c, get+rng+get); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := []struct {
		status int
		enc    string
		body   string
	}{{200, "gzip", jsBody}, {206, "", jsBody[:8]}, {200, "gzip", jsBody}}
	for i, w := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != w.status || resp.Header.Get("Content-Encoding") != w.enc || string(decode(t, w.enc, body)) != w.body {
			t.Fatalf("response %d: %d %q", i, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
	}
	// A request split across writes is reassembled.
	for _, part := range []string{"GET /static/js/app.abc", "defabcdef.js HTTP/1.1\r\nHo", "st: x\r\n\r\n"} {
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != jsBody {
		t.Fatalf("split request: %d", resp.StatusCode)
	}
}

// TestFastPathLargeHeaders: a request whose headers do not fit the fast
// path's buffer still works, through net/http.
func TestFastPathLargeHeaders(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	_, fast, _ := newServer(t, Config{Root: root, Prefix: "/static/"})
	req := "GET /static/css/app.css HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("a", 3*fastBufSize) + "\r\n\r\n"
	resp, body := rawRequest(t, strings.TrimPrefix(fast, "http://"), req)
	if resp.StatusCode != 200 || string(body) != cssBody {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
