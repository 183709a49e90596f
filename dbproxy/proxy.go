package dbproxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Proxy is a running PostgreSQL proxy. Build it with New.
type Proxy struct {
	cfg Config
	s   *settings
	m   *metrics

	ln      net.Listener
	started atomic.Bool
	closing atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	poolsMu sync.Mutex
	pools   map[poolKey]*pool

	clientsMu sync.Mutex
	clients   map[uint32]*client // by proxy-issued backend PID
	nextPID   uint32

	router *router
	cache  *queryCache // nil when off
	// maxLSN is the newest write position any client of this proxy has
	// committed; cache fills from replicas behind it are not kept.
	maxLSN atomic.Uint64
	// pass holds what client logins taught about users whose server
	// password is unknown.
	pass passthroughs
}

// New validates cfg and returns a Proxy ready to Start.
func New(cfg Config) (*Proxy, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, s: s, pools: map[poolKey]*pool{}, clients: map[uint32]*client{}}
	m, err := newMetrics(cfg.Registerer, p)
	if err != nil {
		return nil, err
	}
	p.m = m
	p.router = newRouter(p)
	if cfg.CacheRedis != "" {
		if p.cache, err = newQueryCache(p); err != nil {
			return nil, fmt.Errorf("%w: CacheRedis: %v", ErrConfig, err)
		}
	}
	return p, nil
}

// Addr is the address the proxy listens on, once started.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Start listens and serves clients until Shutdown or ctx ends.
func (p *Proxy) Start(ctx context.Context) error {
	if p.closing.Load() {
		return ErrClosed
	}
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("dbproxy: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("dbproxy: listen: %w", err)
	}
	p.ln = ln
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Add(2)
	go p.accept(ctx)
	go p.maintain(ctx)
	if len(p.s.replicas) > 0 {
		// Know the replicas before the first client arrives, so reads are
		// split from the start.
		p.router.check(ctx)
		p.wg.Add(1)
		go p.router.run(ctx)
	}
	return nil
}

// Shutdown stops accepting, lets clients finish their current transaction
// (in transaction mode) or session until ctx ends, then closes everything.
func (p *Proxy) Shutdown(ctx context.Context) error {
	if !p.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if !p.started.Load() {
		return nil
	}
	_ = p.ln.Close()
	done := make(chan struct{})
	go func() {
		p.clientsWait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.cancel()
	p.clientsMu.Lock()
	for _, c := range p.clients {
		_ = c.conn.Close()
	}
	p.clientsMu.Unlock()
	p.wg.Wait()
	<-done // every client has unregistered by now
	p.poolsMu.Lock()
	for _, pl := range p.pools {
		pl.maintain(context.Background(), true)
	}
	p.poolsMu.Unlock()
	p.router.close()
	if p.cache != nil {
		p.cache.close()
	}
	return err
}

// clientsWait waits until every client is gone. In transaction mode a
// client holding no server connection is between transactions, so it is
// disconnected at once; the others leave at their next idle point.
func (p *Proxy) clientsWait() {
	for {
		p.clientsMu.Lock()
		n := len(p.clients)
		for _, c := range p.clients {
			c.mu.Lock()
			if c.sc == nil && p.cfg.PoolMode == PoolTransaction {
				_ = c.conn.Close()
			}
			c.mu.Unlock()
		}
		p.clientsMu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *Proxy) accept(ctx context.Context) {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if p.closing.Load() || ctx.Err() != nil {
				return
			}
			p.cfg.Logger.Warn("dbproxy: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(ctx, conn)
		}()
	}
}

func (p *Proxy) maintain(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.poolsMu.Lock()
		pools := make([]*pool, 0, len(p.pools))
		for _, pl := range p.pools {
			pools = append(pools, pl)
		}
		p.poolsMu.Unlock()
		for _, pl := range pools {
			pl.maintain(ctx, false)
		}
	}
}

// Startup-phase request codes.
const (
	codeSSL    = 80877103
	codeGSS    = 80877104
	codeCancel = 80877102
)

// readStartup reads one startup-phase packet straight from conn, unbuffered,
// so nothing a client sends before a TLS handshake can be read as if it
// came through TLS.
func readStartup(conn net.Conn) (uint32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 8 || n > 10000 {
		return 0, nil, fmt.Errorf("dbproxy: bad startup packet length %d", n)
	}
	body := make([]byte, n)
	copy(body, hdr[:])
	if _, err := io.ReadFull(conn, body[8:]); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(hdr[4:]), body[4:], nil
}

// serve runs one client connection from its first byte to its last.
func (p *Proxy) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var startup *pgproto3.StartupMessage
	tlsDone := false
	for startup == nil {
		code, body, err := readStartup(conn)
		if err != nil {
			return
		}
		switch code {
		case codeSSL:
			if p.s.tls == nil || tlsDone {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return
			}
			tc := tls.Server(conn, p.s.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				return
			}
			conn, tlsDone = tc, true
			defer tc.Close()
		case codeGSS:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return
			}
		case codeCancel:
			var cr pgproto3.CancelRequest
			if err := cr.Decode(body); err == nil {
				p.cancelRequest(ctx, cr.ProcessID, cr.SecretKey)
			}
			return
		default:
			var sm pgproto3.StartupMessage
			if err := sm.Decode(body); err != nil {
				return
			}
			startup = &sm
		}
	}
	// The startup deadline also covers authentication, so a client that
	// stalls mid-login does not hold a goroutine forever.
	be := pgproto3.NewBackend(conn, conn)
	c, err := p.login(ctx, conn, be, startup)
	if err != nil {
		p.cfg.Logger.Debug("dbproxy: login refused", "err", err, "remote", conn.RemoteAddr().String())
		return
	}
	_ = conn.SetDeadline(time.Time{})
	defer p.unregister(c)
	c.run(ctx)
}

// fatal sends a FATAL error to a client that is being refused.
func fatal(be *pgproto3.Backend, code, msg string) error {
	be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	_ = be.Flush()
	return errors.New("dbproxy: " + msg)
}

// register gives c a proxy-issued backend key, which clients quote in
// CancelRequest.
func (p *Proxy) register(c *client) error {
	p.clientsMu.Lock()
	defer p.clientsMu.Unlock()
	if len(p.clients) >= p.cfg.MaxClientConns {
		return errors.New("too many client connections")
	}
	for {
		p.nextPID++
		if p.nextPID == 0 {
			continue
		}
		if _, taken := p.clients[p.nextPID]; !taken {
			break
		}
	}
	c.pid = p.nextPID
	c.secret = make([]byte, 4)
	_, _ = rand.Read(c.secret)
	p.clients[c.pid] = c
	p.m.clients.Inc()
	return nil
}

func (p *Proxy) unregister(c *client) {
	p.clientsMu.Lock()
	delete(p.clients, c.pid)
	p.clientsMu.Unlock()
	p.m.clients.Dec()
}

// cancelRequest forwards a client's cancel to the server connection it
// holds right now, with that server's real PID and key.
func (p *Proxy) cancelRequest(ctx context.Context, pid uint32, secret []byte) {
	p.clientsMu.Lock()
	c := p.clients[pid]
	p.clientsMu.Unlock()
	if c == nil || string(c.secret) != string(secret) {
		return
	}
	c.mu.Lock()
	sc := c.sc
	var addr string
	var spid uint32
	var key []byte
	if sc != nil {
		addr, spid, key = sc.addr, sc.pid, sc.key
	}
	c.mu.Unlock()
	if sc == nil {
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		p.cfg.Logger.Warn("dbproxy: cancel", "err", err)
		return
	}
	defer conn.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: spid, SecretKey: key}).Encode(nil)
	if err == nil {
		_, _ = conn.Write(buf)
		// The server closes the connection when it has read the request.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
	}
	p.m.cancels.Inc()
}
