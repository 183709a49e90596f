package static

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	fastBufSize     = 8 << 10 // request headers larger than this go to net/http
	idleTimeout     = 120 * time.Second
	headerTimeout   = 10 * time.Second
	writeTimeout    = 60 * time.Second
	maxHeaderBytes  = 64 << 10
	acceptBackoffHi = time.Second
)

var (
	status200 = []byte("HTTP/1.1 200 OK\r\n")
	status304 = []byte("HTTP/1.1 304 Not Modified\r\n")
	connClose = []byte("Connection: close\r\n")
	connKeep  = []byte("Connection: keep-alive\r\n")
	crlf      = []byte("\r\n")
)

// fastServer owns the listener. Each connection is read by a small
// HTTP/1.1 loop that answers plain GET/HEAD requests for indexed files
// from precomputed header bytes, without allocating; the first request it
// does not fully understand hands the connection, with the bytes already
// read, to a net/http Server running the same handler. net/http is
// therefore the reference for every edge case, and the loop only has to be
// right about the simple ones (a test compares the two).
type fastServer struct {
	s       *Server
	ln      net.Listener
	handoff *handoffListener
	http    *http.Server

	closing atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	date    atomic.Pointer[dateLine]
}

type dateLine struct {
	sec  int64
	line []byte
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, fastBufSize); return &b }}

func (s *Server) startServing(ctx context.Context) {
	fs := &fastServer{s: s, ln: s.ln, conns: map[net.Conn]struct{}{},
		handoff: &handoffListener{addr: s.ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}}
	fs.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.fast = fs
	s.wg.Go(func() { _ = fs.http.Serve(fs.handoff) })
	s.wg.Go(fs.acceptLoop)
}

func (s *Server) stopServing(ctx context.Context) error {
	fs := s.fast
	fs.closing.Store(true)
	fs.ln.Close()
	fs.handoff.Close()
	// Wake every connection blocked reading: idle ones close; one in the
	// middle of a response finishes it and then closes.
	fs.mu.Lock()
	for c := range fs.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	fs.mu.Unlock()
	herr := fs.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { fs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		fs.mu.Lock()
		for c := range fs.conns {
			c.Close()
		}
		fs.mu.Unlock()
		<-done
		return ctx.Err()
	}
	return herr
}

func (fs *fastServer) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := fs.ln.Accept()
		if err != nil {
			if fs.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffHi)
			fs.s.log.Warn("static: accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		fs.mu.Lock()
		if fs.closing.Load() {
			fs.mu.Unlock()
			c.Close()
			return
		}
		fs.conns[c] = struct{}{}
		fs.wg.Add(1)
		fs.mu.Unlock()
		go fs.serveConn(c)
	}
}

func (fs *fastServer) forget(c net.Conn) {
	fs.mu.Lock()
	delete(fs.conns, c)
	fs.mu.Unlock()
}

func (fs *fastServer) serveConn(c net.Conn) {
	defer fs.wg.Done()
	bp := bufPool.Get().(*[]byte)
	buf := *bp
	defer bufPool.Put(bp)
	out := make([]byte, 0, 1024)
	n := 0
	reqStarted := false
	for {
		for n > 0 {
			req, used, st := parseFastRequest(buf[:n])
			if st == parseMore {
				break
			}
			if st == parseOK {
				var keep bool
				out, keep, st = fs.respond(c, &req, out)
				if st == parseOK {
					copy(buf, buf[used:n])
					n -= used
					reqStarted = false
					if !keep || fs.closing.Load() {
						fs.forget(c)
						c.Close()
						return
					}
					continue
				}
				if !keep {
					fs.forget(c)
					c.Close()
					return
				}
			}
			fs.handOff(c, buf[:n])
			return
		}
		if n == len(buf) {
			fs.handOff(c, buf[:n]) // headers too large for the fast path
			return
		}
		// An idle connection may wait idleTimeout for its next request;
		// once a request has started, all of its headers must arrive within
		// headerTimeout of its first byte, however slowly they trickle.
		switch {
		case n == 0:
			_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
			reqStarted = false
		case !reqStarted:
			_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
			reqStarted = true
		}
		if fs.closing.Load() && n == 0 {
			fs.forget(c)
			c.Close()
			return
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil && m == 0 {
			fs.forget(c)
			c.Close()
			return
		}
	}
}

// handOff passes the connection and its unread bytes to net/http.
func (fs *fastServer) handOff(c net.Conn, pending []byte) {
	fs.forget(c)
	_ = c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c, pre: append([]byte(nil), pending...)}
	if !fs.handoff.give(pc) {
		c.Close()
	}
}

// respond answers req on c. st is parseHandoff when the request needs
// net/http after all (nothing has been written then); keep is false when
// the connection must close (the client asked, or a write failed).
func (fs *fastServer) respond(c net.Conn, req *fastReq, out []byte) (_ []byte, keep bool, st parseStatus) {
	s := fs.s
	p := unsafe.String(unsafe.SliceData(req.path), len(req.path))
	name, dir, verdict := resolvePath(s.cfg.Prefix, p, p)
	if verdict != pathOK || dir {
		return out, true, parseHandoff
	}
	f, _ := s.lookup(name, false)
	if f == nil {
		return out, true, parseHandoff
	}
	rp := f.choose(bstr(req.ae), req.aePresent, false)
	if rp == nil {
		return out, true, parseHandoff
	}
	keep = !req.close
	nm := notModified(bstr(req.inm), req.hasINM, bstr(req.ims), req.hasIMS, rp.etag, f.mtime)
	if s.cfg.AccessLog != nil {
		defer func() {
			if st == parseOK {
				method, status := http.MethodGet, http.StatusOK
				if req.head {
					method = http.MethodHead
				}
				if nm {
					status = http.StatusNotModified
				}
				s.logAccess(method, string(req.path), status, rp, string(req.ae))
			}
		}()
	}
	if nm {
		out = fs.head(out[:0], status304, rp.wire304, req)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := c.Write(out)
		return out, keep && err == nil, parseOK
	}
	if rp.data == nil {
		b, err := s.open(rp)
		if err != nil {
			return out, true, parseHandoff // net/http rescans or reports it
		}
		defer b.Close()
		out = fs.head(out[:0], status200, rp.wire, req)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(out); err != nil {
			return out, false, parseOK
		}
		if !req.head {
			// *os.File to *net.TCPConn: sendfile.
			if n, err := io.CopyN(c, b, rp.size); err != nil || n != rp.size {
				return out, false, parseOK
			}
		}
		return out, keep, parseOK
	}
	out = fs.head(out[:0], status200, rp.wire, req)
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	var err error
	switch {
	case req.head:
		_, err = c.Write(out)
	case len(rp.data) <= 2048:
		// Small bodies ride in the header buffer: one write.
		out = append(out, rp.data...)
		_, err = c.Write(out)
	default:
		bufs := net.Buffers{out, rp.data}
		_, err = bufs.WriteTo(c) // writev
	}
	return out, keep && err == nil, parseOK
}

// head renders the status line, the precomputed headers, Date and the
// connection header.
func (fs *fastServer) head(out, status, wire []byte, req *fastReq) []byte {
	out = append(out, status...)
	out = append(out, wire...)
	out = append(out, fs.dateLine()...)
	switch {
	case req.close:
		out = append(out, connClose...)
	case req.http10:
		out = append(out, connKeep...)
	}
	return append(out, crlf...)
}

// dateLine is the Date header for the current second, formatted once a second.
func (fs *fastServer) dateLine() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := fs.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
	line = append(line, crlf...)
	fs.date.Store(&dateLine{sec: sec, line: line})
	return line
}

// bstr views b as a string without copying; the result must not outlive
// the buffer b aliases (it is only used within one request).
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// handoffListener feeds connections from the fast path to net/http.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// prefixConn replays bytes the fast path already read, and keeps the
// underlying connection's ReadFrom so net/http still uses sendfile.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
