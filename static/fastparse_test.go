package static

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func TestParseFastRequest(t *testing.T) {
	t.Parallel()
	const h = "Host: x\r\n"
	cases := []struct {
		name string
		in   string
		st   parseStatus
		want fastReq // path, ae, inm, close, head checked
	}{
		{"simple", "GET /a.css HTTP/1.1\r\n" + h + "\r\n", parseOK, fastReq{path: []byte("/a.css")}},
		{"query dropped", "GET /a.css?v=3 HTTP/1.1\r\n" + h + "\r\n", parseOK, fastReq{path: []byte("/a.css")}},
		{"head", "HEAD /a HTTP/1.1\r\n" + h + "\r\n", parseOK, fastReq{path: []byte("/a"), head: true}},
		{"headers", "GET /a HTTP/1.1\r\nhost: x\r\naccept-encoding:  br, gzip \r\nIf-None-Match: \"e\"\r\nUser-Agent: t\r\n\r\n", parseOK,
			fastReq{path: []byte("/a"), ae: []byte("br, gzip"), aePresent: true, inm: []byte(`"e"`), hasINM: true}},
		{"connection close", "GET /a HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", parseOK, fastReq{path: []byte("/a"), close: true}},
		{"http/1.0 closes", "GET /a HTTP/1.0\r\n\r\n", parseOK, fastReq{path: []byte("/a"), close: true, http10: true}},
		{"http/1.0 keep-alive", "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", parseOK, fastReq{path: []byte("/a"), http10: true, keepAlive: true}},
		{"content-length 0", "GET /a HTTP/1.1\r\n" + h + "Content-Length: 0\r\n\r\n", parseOK, fastReq{path: []byte("/a")}},
		{"incomplete line", "GET /a HT", parseMore, fastReq{}},
		{"incomplete headers", "GET /a HTTP/1.1\r\nHost: x\r\n", parseMore, fastReq{}},
		{"incomplete method", "HEA", parseMore, fastReq{}},
		{"post", "POST /a HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"lowercase method", "get /a HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"percent", "GET /a%20b HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"absolute form", "GET http://x/a HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"asterisk", "OPTIONS * HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", parseHandoff, fastReq{}},
		{"no host", "GET /a HTTP/1.1\r\n\r\n", parseHandoff, fastReq{}},
		{"two hosts", "GET /a HTTP/1.1\r\n" + h + h + "\r\n", parseHandoff, fastReq{}},
		{"bad host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", parseHandoff, fastReq{}},
		{"range", "GET /a HTTP/1.1\r\n" + h + "Range: bytes=0-1\r\n\r\n", parseHandoff, fastReq{}},
		{"if-match", "GET /a HTTP/1.1\r\n" + h + "If-Match: *\r\n\r\n", parseHandoff, fastReq{}},
		{"body", "GET /a HTTP/1.1\r\n" + h + "Content-Length: 3\r\n\r\nabc", parseHandoff, fastReq{}},
		{"chunked", "GET /a HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n", parseHandoff, fastReq{}},
		{"expect", "GET /a HTTP/1.1\r\n" + h + "Expect: 100-continue\r\n\r\n", parseHandoff, fastReq{}},
		{"upgrade", "GET /a HTTP/1.1\r\n" + h + "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n", parseHandoff, fastReq{}},
		{"obs-fold", "GET /a HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", parseHandoff, fastReq{}},
		{"bare LF", "GET /a HTTP/1.1\n" + h + "\n", parseHandoff, fastReq{}},
		{"space before colon", "GET /a HTTP/1.1\r\n" + h + "X : a\r\n\r\n", parseHandoff, fastReq{}},
		{"ctl in value", "GET /a HTTP/1.1\r\n" + h + "X: a\x01b\r\n\r\n", parseHandoff, fastReq{}},
		{"duplicate accept-encoding", "GET /a HTTP/1.1\r\n" + h + "Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n\r\n", parseHandoff, fastReq{}},
		{"utf-8 in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"nul in target", "GET /a\x00 HTTP/1.1\r\n" + h + "\r\n", parseHandoff, fastReq{}},
		{"version 0.9", "GET /a\r\n\r\n", parseHandoff, fastReq{}},
		{"garbage", "\x16\x03\x01\x02\x00\x01", parseHandoff, fastReq{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, used, st := parseFastRequest([]byte(tc.in))
			if st != tc.st {
				t.Fatalf("status = %d, want %d", st, tc.st)
			}
			if st != parseOK {
				return
			}
			if used != len(tc.in) {
				t.Errorf("consumed %d of %d bytes", used, len(tc.in))
			}
			w := tc.want
			if string(req.path) != string(w.path) || string(req.ae) != string(w.ae) || req.aePresent != w.aePresent ||
				string(req.inm) != string(w.inm) || req.hasINM != w.hasINM || req.close != w.close ||
				req.head != w.head || req.http10 != w.http10 || req.keepAlive != w.keepAlive {
				t.Errorf("got %+v\nwant %+v", req, w)
			}
		})
	}
}

// TestParseFastRequestPipelined checks that consumed stops at the end of
// the first request.
func TestParseFastRequestPipelined(t *testing.T) {
	t.Parallel()
	one := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	_, used, st := parseFastRequest([]byte(one + "GET /b HTTP/1.1\r\n"))
	if st != parseOK || used != len(one) {
		t.Fatalf("got (%d, %d), want (%d, %d)", used, st, len(one), parseOK)
	}
}

// FuzzParseFastRequest: whatever the fast parser accepts, net/http's own
// parser accepts too, with the same method, path and headers: the fast
// path never answers a request net/http would have read differently.
func FuzzParseFastRequest(f *testing.F) {
	for _, s := range []string{
		"GET /a.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\n\r\n",
		"HEAD /a?b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/\"a\", \"b\"\r\nIf-Modified-Since: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close, keep-alive\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, used, st := parseFastRequest(in)
		if st != parseOK {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in[:used])))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http refuses it: %v", in[:used], err)
		}
		method := "GET"
		if req.head {
			method = "HEAD"
		}
		if hr.Method != method || hr.URL.Path != string(req.path) {
			t.Fatalf("fast %s %q, net/http %s %q", method, req.path, hr.Method, hr.URL.Path)
		}
		if got := strings.Join(hr.Header["Accept-Encoding"], ","); got != string(req.ae) {
			t.Fatalf("Accept-Encoding: fast %q, net/http %q", req.ae, got)
		}
		if got := strings.Join(hr.Header["If-None-Match"], ","); got != string(req.inm) {
			t.Fatalf("If-None-Match: fast %q, net/http %q", req.inm, got)
		}
		if hr.ContentLength > 0 || len(hr.TransferEncoding) > 0 {
			t.Fatalf("fast path accepted a request with a body: %q", in[:used])
		}
		if req.close != hr.Close {
			t.Fatalf("close: fast %v, net/http %v for %q", req.close, hr.Close, in[:used])
		}
	})
}
