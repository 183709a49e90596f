package dbproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ErrPoolTimeout is returned when no server connection became free within
// QueryWaitTimeout.
var ErrPoolTimeout = errors.New("dbproxy: timed out waiting for a server connection")

// serverConn is one authenticated connection to a PostgreSQL server.
type serverConn struct {
	pool    *pool
	conn    net.Conn
	fe      *pgproto3.Frontend
	pid     uint32
	key     []byte
	addr    string
	params  map[string]string
	created time.Time
	used    time.Time
	// prepared maps statement names prepared on this connection to their
	// query text, so a client's statement is re-prepared only when missing
	// or different.
	prepared map[string]string
	broken   bool
}

func (sc *serverConn) close() {
	sc.fe.Send(&pgproto3.Terminate{})
	_ = sc.fe.Flush()
	_ = sc.conn.Close()
}

// poolKey names a pool: one per database, user and server.
type poolKey struct {
	db, user string
	server   int // 0 = primary, i = Replicas[i-1]
}

// pool holds idle server connections for one poolKey. sem counts lent
// connections; a new one is dialled only when none is idle, so lent plus
// idle never exceeds the pool size.
type pool struct {
	p      *Proxy
	key    poolKey
	cfg    *pgconn.Config
	sem    chan struct{}
	mu     sync.Mutex
	idle   []*serverConn
	total  int
	params map[string]string // what the first connection reported

	waiting atomic.Int64
	// Totals for SHOW STATS.
	lendings, queries, waitMicros atomic.Int64
}

func (p *Proxy) pool(key poolKey) *pool {
	p.poolsMu.Lock()
	defer p.poolsMu.Unlock()
	if pl, ok := p.pools[key]; ok {
		return pl
	}
	base := p.s.primary
	if key.server > 0 {
		base = p.s.replicas[key.server-1]
	}
	cfg := base.Copy()
	cfg.Database = key.db
	if key.user != cfg.User {
		cfg.User = key.user
		cfg.Password = ""
	}
	if secret, ok := p.s.users[key.user]; ok && !strings.HasPrefix(secret, "SCRAM-SHA-256$") && !(len(secret) == 35 && strings.HasPrefix(secret, "md5")) {
		cfg.Password = secret
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "dbproxy"
	pl := &pool{p: p, key: key, cfg: cfg, sem: make(chan struct{}, p.cfg.PoolSize)}
	p.pools[key] = pl
	return pl
}

// acquire lends a server connection, dialling one if none is idle.
func (pl *pool) acquire(ctx context.Context) (*serverConn, error) {
	select {
	case pl.sem <- struct{}{}:
	default:
		pl.waiting.Add(1)
		start := time.Now()
		t := time.NewTimer(pl.p.cfg.QueryWaitTimeout)
		select {
		case pl.sem <- struct{}{}:
			t.Stop()
			pl.waiting.Add(-1)
			waited := time.Since(start)
			pl.waitMicros.Add(waited.Microseconds())
			pl.p.m.waitSeconds.Observe(waited.Seconds())
		case <-t.C:
			pl.waiting.Add(-1)
			return nil, ErrPoolTimeout
		case <-ctx.Done():
			t.Stop()
			pl.waiting.Add(-1)
			return nil, ctx.Err()
		}
	}
	now := time.Now()
	pl.mu.Lock()
	for len(pl.idle) > 0 {
		sc := pl.idle[len(pl.idle)-1]
		pl.idle = pl.idle[:len(pl.idle)-1]
		if now.Sub(sc.created) > pl.p.cfg.ServerLifetime {
			pl.total--
			pl.mu.Unlock()
			sc.close()
			pl.mu.Lock()
			continue
		}
		pl.mu.Unlock()
		sc.used = now
		return sc, nil
	}
	pl.mu.Unlock()
	return pl.grow(ctx)
}

// grow dials a new server connection for a slot already taken in pl.sem;
// on failure the slot is given back.
func (pl *pool) grow(ctx context.Context) (*serverConn, error) {
	pl.mu.Lock()
	pl.total++
	pl.mu.Unlock()
	sc, err := pl.dial(ctx)
	if err != nil {
		pl.mu.Lock()
		pl.total--
		pl.mu.Unlock()
		<-pl.sem
		return nil, err
	}
	return sc, nil
}

func (pl *pool) dial(ctx context.Context) (*serverConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hc, err := pl.connect(ctx)
	if err != nil {
		pl.p.m.serverErrors.Inc()
		return nil, err
	}
	params := make(map[string]string, len(hc.ParameterStatuses))
	for k, v := range hc.ParameterStatuses {
		params[k] = v
	}
	pl.mu.Lock()
	if pl.params == nil {
		pl.params = params
	}
	pl.mu.Unlock()
	now := time.Now()
	pl.p.m.serverConns.Inc()
	return &serverConn{
		pool: pl, conn: hc.Conn, fe: pgproto3.NewFrontend(hc.Conn, hc.Conn),
		pid: hc.PID, key: hc.SecretKey, addr: hc.Conn.RemoteAddr().String(),
		params: params, created: now, used: now, prepared: map[string]string{},
	}, nil
}

// connect logs in to the server: with the configured password through
// pgconn, or, when there is none, with what a client's login taught.
func (pl *pool) connect(ctx context.Context) (*pgconn.HijackedConn, error) {
	if pl.cfg.Password == "" {
		if pt, ok := pl.p.pass.get(pl.key.user); ok {
			return loginWithKeys(ctx, pl.cfg, pt)
		}
	}
	c, err := pgconn.ConnectConfig(ctx, pl.cfg)
	if err != nil {
		return nil, fmt.Errorf("dbproxy: connect to %s: %w", pl.cfg.Host, err)
	}
	if err := c.SyncConn(ctx); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return c.Hijack()
}

// release gives sc back; a broken or expired connection is closed.
func (pl *pool) release(sc *serverConn) {
	now := time.Now()
	if sc.broken || now.Sub(sc.created) > pl.p.cfg.ServerLifetime || pl.p.closing.Load() {
		pl.discard(sc)
		return
	}
	sc.used = now
	pl.mu.Lock()
	pl.idle = append(pl.idle, sc)
	pl.mu.Unlock()
	<-pl.sem
}

// discard closes a lent connection.
func (pl *pool) discard(sc *serverConn) {
	sc.close()
	pl.p.m.serverConns.Dec()
	pl.mu.Lock()
	pl.total--
	pl.mu.Unlock()
	<-pl.sem
}

// maintain closes idle connections past their idle timeout or lifetime (all
// of them with all=true) and tops the pool up to MinIdle.
func (pl *pool) maintain(ctx context.Context, all bool) {
	now := time.Now()
	var old []*serverConn
	pl.mu.Lock()
	keep := pl.idle[:0]
	for _, sc := range pl.idle {
		if all || now.Sub(sc.used) > pl.p.cfg.ServerIdleTimeout || now.Sub(sc.created) > pl.p.cfg.ServerLifetime {
			old = append(old, sc)
			pl.total--
			continue
		}
		keep = append(keep, sc)
	}
	pl.idle = keep
	need := pl.p.cfg.MinIdle - len(pl.idle)
	pl.mu.Unlock()
	for _, sc := range old {
		sc.close()
		pl.p.m.serverConns.Dec()
	}
	for ; !all && need > 0; need-- {
		select {
		case pl.sem <- struct{}{}:
		default:
			return
		}
		sc, err := pl.grow(ctx)
		if err != nil {
			return
		}
		pl.release(sc)
	}
}

// counts reports lent, idle and waiting numbers for SHOW POOLS.
func (pl *pool) counts() (active, idle, waiting int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.sem), len(pl.idle), int(pl.waiting.Load())
}
