package dbproxy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// replicaState is what the last health check learnt about a replica.
type replicaState struct {
	up     bool
	replay uint64 // pg_last_wal_replay_lsn()
	lagB   int64  // primary WAL position minus replay position
	err    string
}

// router keeps replica health and function volatility, and picks servers.
type router struct {
	p  *Proxy
	mu sync.Mutex
	// replicas[i] describes Replicas[i]; index i+1 in poolKey.server.
	replicas []replicaState
	primary  uint64
	next     atomic.Uint32

	connsMu sync.Mutex
	conns   map[string]*pgx.Conn // checks and lookups, by "server/db"

	volMu sync.Mutex
	vol   map[string]volEntry // "db\x00name" -> volatility
	// fixed holds the configured answers that beat pg_proc.
	fixed map[string]bool
}

type volEntry struct {
	volatile bool
	at       time.Time
}

func newRouter(p *Proxy) *router {
	r := &router{p: p, replicas: make([]replicaState, len(p.s.replicas)),
		conns: map[string]*pgx.Conn{}, vol: map[string]volEntry{}, fixed: map[string]bool{}}
	for _, f := range append(slices.Clone(DefaultReplicaSafeFunctions), p.cfg.ReplicaSafeFunctions...) {
		r.fixed[strings.ToLower(f)] = false
	}
	for _, f := range p.cfg.PrimaryFunctions {
		r.fixed[strings.ToLower(f)] = true
	}
	return r
}

// pick returns the replica (1-based) to read from for a client that must
// see WAL position lsn, or 0 for the primary. Healthy replicas within the
// lag limit that have replayed lsn take turns.
func (r *router) pick(lsn uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.replicas)
	start := int(r.next.Add(1))
	for i := range n {
		j := (start + i) % n
		st := r.replicas[j]
		if st.up && st.lagB <= r.p.cfg.ReplicaMaxLag && st.replay >= lsn {
			return j + 1
		}
	}
	if lsn > 0 {
		r.p.m.rywPrimary.Inc()
	}
	return 0
}

// replay is the last polled replay position of a replica.
func (r *router) replay(server int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replicas[server-1].replay
}

// markDown takes a replica out of reads until a health check finds it up.
func (r *router) markDown(server int) {
	r.mu.Lock()
	r.replicas[server-1].up = false
	r.mu.Unlock()
	r.p.poolsMu.Lock()
	var pools []*pool
	for k, pl := range r.p.pools {
		if k.server == server {
			pools = append(pools, pl)
		}
	}
	r.p.poolsMu.Unlock()
	for _, pl := range pools {
		pl.maintain(context.Background(), true)
	}
}

// conn returns a checking connection to server (0 = primary) and db.
func (r *router) conn(ctx context.Context, server int, db string) (*pgx.Conn, error) {
	key := string(rune('0'+server)) + "/" + db
	r.connsMu.Lock()
	c := r.conns[key]
	r.connsMu.Unlock()
	if c != nil && !c.IsClosed() {
		return c, nil
	}
	base := r.p.s.primary
	if server > 0 {
		base = r.p.s.replicas[server-1]
	}
	cfg, _ := pgx.ParseConfig("")
	pc := base.Copy()
	if db != "" {
		pc.Database = db
	}
	cfg.Config = *pc
	cfg.ConnectTimeout = 2 * time.Second
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	r.connsMu.Lock()
	r.conns[key] = c
	r.connsMu.Unlock()
	return c, nil
}

func (r *router) dropConn(server int, db string) {
	key := string(rune('0'+server)) + "/" + db
	r.connsMu.Lock()
	c := r.conns[key]
	delete(r.conns, key)
	r.connsMu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(ctx)
		cancel()
	}
}

func (r *router) close() {
	r.connsMu.Lock()
	conns := r.conns
	r.conns = map[string]*pgx.Conn{}
	r.connsMu.Unlock()
	for _, c := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(ctx)
		cancel()
	}
}

// run polls the primary's WAL position and each replica's replay position.
func (r *router) run(ctx context.Context) {
	defer r.p.wg.Done()
	t := time.NewTicker(r.p.cfg.HealthInterval)
	defer t.Stop()
	for {
		r.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *router) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var primary uint64
	if c, err := r.conn(ctx, 0, ""); err == nil {
		var s string
		if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err == nil {
			primary, _ = parseLSN(s)
		} else {
			r.dropConn(0, "")
		}
	}
	for i := range r.replicas {
		st := replicaState{}
		c, err := r.conn(ctx, i+1, "")
		if err == nil {
			var rec bool
			var s *string
			err = c.QueryRow(ctx, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text").Scan(&rec, &s)
			switch {
			case err != nil:
				r.dropConn(i+1, "")
			case !rec || s == nil:
				st.err = "not a streaming standby"
			default:
				st.up = true
				st.replay, _ = parseLSN(*s)
				if primary > st.replay {
					st.lagB = int64(primary - st.replay)
				}
			}
		}
		if err != nil {
			st.err = err.Error()
		}
		r.mu.Lock()
		was := r.replicas[i].up
		r.replicas[i] = st
		if primary > 0 {
			r.primary = primary
		}
		r.mu.Unlock()
		if was != st.up {
			r.p.cfg.Logger.Info("dbproxy: replica health", "replica", i, "up", st.up, "err", st.err)
		}
		r.p.m.replicaLag.WithLabelValues(r.p.s.replicas[i].Host + ":" + itoa(int(r.p.s.replicas[i].Port))).Set(float64(st.lagB))
	}
}

// volatile reports whether any of funcs is VOLATILE in db's pg_proc. Names
// pg_proc does not know are not functions. When the lookup fails the
// answer is "volatile", which sends the statement to the primary.
func (r *router) volatile(ctx context.Context, db string, funcs []string) bool {
	if len(funcs) == 0 {
		return false
	}
	now := time.Now()
	var missing []string
	r.volMu.Lock()
	for _, f := range funcs {
		if v, ok := r.fixed[f]; ok {
			if v {
				r.volMu.Unlock()
				return true
			}
			continue
		}
		e, ok := r.vol[db+"\x00"+f]
		if !ok || now.Sub(e.at) > r.p.cfg.VolatilityTTL {
			missing = append(missing, f)
			continue
		}
		if e.volatile {
			r.volMu.Unlock()
			return true
		}
	}
	r.volMu.Unlock()
	if len(missing) == 0 {
		return false
	}
	c, err := r.conn(ctx, 0, db)
	if err != nil {
		return true
	}
	// pgx.Conn is not safe for concurrent use; lookups are rare thanks to
	// the cache, so one lock serialises them.
	r.volMu.Lock()
	defer r.volMu.Unlock()
	rows, err := c.Query(ctx, "SELECT proname::text, bool_or(provolatile = 'v') FROM pg_proc WHERE proname = ANY($1) GROUP BY proname", missing)
	if err != nil {
		r.dropConn(0, db)
		return true
	}
	found := map[string]bool{}
	for rows.Next() {
		var name string
		var v bool
		if rows.Scan(&name, &v) == nil {
			found[name] = v
		}
	}
	if rows.Err() != nil {
		return true
	}
	anyVolatile := false
	for _, f := range missing {
		v := found[f]
		r.vol[db+"\x00"+f] = volEntry{volatile: v, at: now}
		anyVolatile = anyVolatile || v
	}
	return anyVolatile
}

// authQuery runs Config.AuthQuery on the primary for user.
func (r *router) authQuery(ctx context.Context, user string) (string, bool, error) {
	// Shares the pg_proc lookup connection, under the same lock.
	c, err := r.conn(ctx, 0, r.p.s.primary.Database)
	if err != nil {
		return "", false, err
	}
	r.volMu.Lock()
	defer r.volMu.Unlock()
	var name string
	var secret *string
	err = c.QueryRow(ctx, r.p.cfg.AuthQuery, user).Scan(&name, &secret)
	if err == pgx.ErrNoRows || (err == nil && secret == nil) {
		return "", false, nil
	}
	if err != nil {
		r.dropConn(0, r.p.s.primary.Database)
		return "", false, err
	}
	return *secret, true, nil
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}
