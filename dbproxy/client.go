package dbproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/celeriac/celeriac/dbproxy/sqlclass"
)

// trackedParams are the settings that follow a client from one server
// connection to the next.
var trackedParams = []string{"client_encoding", "DateStyle", "TimeZone", "IntervalStyle", "application_name"}

// slot is one request sent to the server whose reply has not fully come
// back. Replies come in request order, so a FIFO of slots says which reply
// belongs to what, and which replies to injected requests to hide.
type slot struct {
	kind    byte   // message type of the request: Q P B D E C S F
	swallow bool   // the proxy injected it; the client must not see the reply
	name    string // statement name, for Parse
}

// client is one client connection after login.
type client struct {
	p      *Proxy
	conn   net.Conn
	be     *pgproto3.Backend
	user   string
	db     string
	admin  bool
	pid    uint32
	secret []byte
	params map[string]string

	mu sync.Mutex // guards sc, which cancelRequest reads
	sc *serverConn

	stmts     map[string]*pgproto3.Parse // the client's named statements
	lsn       uint64                     // WAL position the client must see
	queue     []slot
	unsynced  bool // extended-protocol messages sent since the last Sync
	status    byte // last ReadyForQuery status
	wrote     bool // the current server lending started with a write
	onPrimary bool
	skipSync  bool // an error was reported; drop messages until Sync
	queries   int64

	// Query cache: tables this lending wrote, and a result being gathered.
	dirty   []string
	fill    string
	fillBuf []byte
	fillBad bool
}

// login authenticates the client and sends the greeting.
func (p *Proxy) login(ctx context.Context, conn net.Conn, be *pgproto3.Backend, sm *pgproto3.StartupMessage) (*client, error) {
	user := sm.Parameters["user"]
	db := sm.Parameters["database"]
	if db == "" {
		db = user
	}
	if user == "" {
		return nil, fatal(be, "28000", "no user name given")
	}
	if v := sm.Parameters["replication"]; v != "" && v != "false" && v != "0" {
		return nil, fatal(be, "08P01", "replication connections are not proxied")
	}
	if p.closing.Load() {
		return nil, fatal(be, "57P01", "dbproxy is shutting down")
	}
	for k, v := range sm.Parameters {
		if !startupParamOK(k, v) {
			// Dropping it silently could run the client's queries with the
			// wrong search_path or role; refuse, as PgBouncer does.
			return nil, fatal(be, "08P01", fmt.Sprintf("unsupported startup parameter: %s", k))
		}
	}
	c := &client{p: p, conn: conn, be: be, user: user, db: db, params: map[string]string{},
		stmts: map[string]*pgproto3.Parse{}, status: 'I', onPrimary: true}
	secret, found := p.s.users[user]
	if !found && p.cfg.AuthQuery != "" && p.cfg.AuthType != AuthTrust {
		var err error
		secret, found, err = p.router.authQuery(ctx, user)
		if err != nil {
			p.cfg.Logger.Warn("dbproxy: auth query", "err", err)
		}
	}
	if err := p.authenticate(be, user, secret, found); err != nil {
		p.m.authFailures.Inc()
		if errors.Is(err, ErrAuth) {
			return nil, fatal(be, "28P01", fmt.Sprintf("password authentication failed for user %q", user))
		}
		return nil, err
	}
	if err := p.register(c); err != nil {
		return nil, fatal(be, "53300", err.Error())
	}
	be.Send(&pgproto3.AuthenticationOk{})
	var server map[string]string
	if db == p.cfg.AdminDatabase {
		if !slices.Contains(p.cfg.AdminUsers, user) {
			p.unregister(c)
			return nil, fatal(be, "28000", "not an admin user")
		}
		c.admin = true
		server = map[string]string{"server_version": "15.0 (dbproxy)", "client_encoding": "UTF8", "server_encoding": "UTF8", "DateStyle": "ISO, MDY", "integer_datetimes": "on", "standard_conforming_strings": "on", "TimeZone": "UTC"}
	} else {
		var err error
		if server, err = p.serverParams(ctx, db, user); err != nil {
			p.unregister(c)
			return nil, fatal(be, "08006", err.Error())
		}
	}
	for _, k := range trackedParams {
		c.params[k] = server[k]
		// Setting names are case-insensitive (pgx sends "timezone").
		for sk, v := range sm.Parameters {
			if strings.EqualFold(sk, k) {
				c.params[k] = v
			}
		}
		if c.params[k] == "" {
			delete(c.params, k)
		}
	}
	for k, v := range server {
		if cv, ok := c.params[k]; ok {
			v = cv
		}
		be.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	be.Send(&pgproto3.BackendKeyData{ProcessID: c.pid, SecretKey: c.secret})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		p.unregister(c)
		return nil, err
	}
	return c, nil
}

// startupParamOK reports whether the proxy honours (or may ignore) a
// startup parameter: the tracked settings follow the client; the rest
// would be lost when the client changes server connection.
func startupParamOK(k, v string) bool {
	switch strings.ToLower(k) {
	case "user", "database", "replication":
		return true
	case "extra_float_digits":
		return true // JDBC sends it; the server's default output is exact anyway
	case "options":
		return strings.TrimSpace(v) == ""
	}
	for _, t := range trackedParams {
		if strings.EqualFold(k, t) {
			return true
		}
	}
	return false
}

// serverParams returns what the primary reports for (db, user), connecting
// once if no connection was made yet; that also proves the server side
// credentials before the client is told it is in.
func (p *Proxy) serverParams(ctx context.Context, db, user string) (map[string]string, error) {
	pl := p.pool(poolKey{db: db, user: user})
	pl.mu.Lock()
	params := pl.params
	pl.mu.Unlock()
	if params != nil {
		return params, nil
	}
	sc, err := pl.acquire(ctx)
	if err != nil {
		return nil, err
	}
	pl.release(sc)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.params, nil
}

// run serves the client's messages until it leaves.
func (c *client) run(ctx context.Context) {
	defer c.leave()
	for {
		msg, err := c.be.Receive()
		if err != nil {
			return
		}
		if c.admin {
			if !c.adminMessage(msg) {
				return
			}
			continue
		}
		if _, ok := msg.(*pgproto3.Terminate); ok {
			return
		}
		if c.skipSync {
			if _, ok := msg.(*pgproto3.Sync); ok {
				c.skipSync = false
				c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.status})
				if c.be.Flush() != nil {
					return
				}
			}
			continue
		}
		if c.sc == nil && c.p.cache != nil {
			if q, ok := msg.(*pgproto3.Query); ok && c.status == 'I' {
				hit, fill := c.cacheLookup(ctx, q)
				if hit {
					continue
				}
				c.fill, c.fillBuf, c.fillBad = fill, c.fillBuf[:0], false
			}
		}
		if c.sc == nil {
			if _, ok := msg.(*pgproto3.Sync); ok {
				// Nothing pending anywhere: answer for the server.
				c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				if c.be.Flush() != nil {
					return
				}
				continue
			}
			if err := c.attach(ctx, msg); err != nil {
				c.fill = ""
				if !c.reportError(msg, "08006", err.Error()) {
					return
				}
				continue
			}
		}
		if c.p.cache != nil {
			c.noteWrite(ctx, msg)
		}
		if err := c.forward(msg); err != nil {
			c.serverLost(err)
			continue
		}
		switch msg.(type) {
		case *pgproto3.Query, *pgproto3.Sync, *pgproto3.Flush, *pgproto3.FunctionCall:
		default:
			continue
		}
		if err := c.sc.fe.Flush(); err != nil {
			c.serverLost(err)
			continue
		}
		if err := c.relay(); err != nil {
			c.fill = ""
			if errors.Is(err, errClientGone) {
				return
			}
			c.serverLost(err)
			continue
		}
		if c.fill != "" {
			if !c.fillBad && len(c.fillBuf) <= maxCachedResult {
				c.cacheStore(ctx, c.fill, c.fillBuf)
			}
			c.fill = ""
		}
		if c.p.cfg.PoolMode == PoolTransaction && c.status == 'I' && !c.unsynced {
			c.detach()
			if c.p.closing.Load() {
				_ = fatal(c.be, "57P01", "dbproxy is shutting down")
				return
			}
		}
	}
}

var errClientGone = errors.New("dbproxy: client connection lost")

// reportError tells the client a request failed without a server: a simple
// query gets its ReadyForQuery, an extended batch is skipped to its Sync.
func (c *client) reportError(msg pgproto3.FrontendMessage, code, text string) bool {
	c.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: text})
	switch msg.(type) {
	case *pgproto3.Query, *pgproto3.FunctionCall:
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	default:
		c.skipSync = true
	}
	return c.be.Flush() == nil
}

// serverLost drops a server connection that failed under the client; the
// client hears an error and may carry on with a new one.
func (c *client) serverLost(err error) {
	c.p.cfg.Logger.Warn("dbproxy: server connection lost", "err", err, "user", c.user, "db", c.db)
	sc := c.sc
	sc.broken = true
	c.mu.Lock()
	c.sc = nil
	c.mu.Unlock()
	sc.pool.discard(sc)
	if sc.pool.key.server > 0 {
		c.p.router.markDown(sc.pool.key.server)
	}
	pending := len(c.queue) > 0
	c.queue = c.queue[:0]
	c.fill = ""
	c.unsynced = false
	c.status = 'I'
	c.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "08006", Message: "server connection lost: " + err.Error()})
	if pending {
		c.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	_ = c.be.Flush()
}

// attach picks a server for the request msg starts and borrows a
// connection from its pool.
func (c *client) attach(ctx context.Context, msg pgproto3.FrontendMessage) error {
	p := c.p
	target, write := 0, true
	if p.cfg.PoolMode == PoolTransaction && len(p.s.replicas) > 0 {
		var sql string
		switch m := msg.(type) {
		case *pgproto3.Query:
			sql = m.String
		case *pgproto3.Parse:
			sql = m.Query
		case *pgproto3.Bind:
			if st := c.stmts[m.PreparedStatement]; m.PreparedStatement != "" && st != nil {
				sql = st.Query
			}
		}
		if sql != "" {
			r := sqlclass.Classify(sql)
			write = r.Primary || p.router.volatile(ctx, c.db, r.Functions)
			// A token from another connection or proxy instance (carried
			// by the app, e.g. in a Celery task's headers).
			if lsn, ok := parseLSN(r.LSN); ok && lsn > c.lsn {
				c.lsn = lsn
			}
		}
		if !write {
			target = p.router.pick(c.lsn)
		}
	}
	sc, err := p.pool(poolKey{db: c.db, user: c.user, server: target}).acquire(ctx)
	if err != nil && target > 0 {
		p.router.markDown(target)
		target = 0
		sc, err = p.pool(poolKey{db: c.db, user: c.user}).acquire(ctx)
	}
	if err != nil {
		return err
	}
	if err := c.syncParams(sc); err != nil {
		sc.broken = true
		sc.pool.discard(sc)
		return err
	}
	c.mu.Lock()
	c.sc = sc
	c.mu.Unlock()
	sc.pool.lendings.Add(1)
	c.onPrimary = target == 0
	c.wrote = target == 0 && write
	if c.fill != "" && target > 0 && p.router.replay(target) < p.maxLSN.Load() {
		// The replica may not have every write yet: serve, but do not
		// cache, what it answers.
		c.fillBad = true
	}
	if target == 0 {
		p.m.routed.WithLabelValues("primary").Inc()
	} else {
		p.m.routed.WithLabelValues("replica").Inc()
	}
	return nil
}

// syncParams makes sc's tracked settings match the client's.
func (c *client) syncParams(sc *serverConn) error {
	var sets []string
	for _, k := range trackedParams {
		if v, ok := c.params[k]; ok && sc.params[k] != v {
			sets = append(sets, fmt.Sprintf("SET %s TO '%s'", k, strings.ReplaceAll(v, "'", "''")))
		}
	}
	if len(sets) == 0 {
		return nil
	}
	_, err := sc.internal(strings.Join(sets, "; "))
	return err
}

// detach gives the server connection back between transactions, first
// recording the primary's WAL position if the client wrote.
func (c *client) detach() {
	sc := c.sc
	c.wrote = false
	c.endWrites()
	c.mu.Lock()
	c.sc = nil
	c.mu.Unlock()
	sc.pool.release(sc)
}

// recordLSN notes the primary's WAL position after the client's write
// transaction ended, and tells the client as ParameterStatus dbproxy_lsn —
// a token it can hand to other connections or processes, which put it in a
// /* dbproxy:lsn=… */ comment. It runs before the ReadyForQuery that ends
// the transaction reaches the client, so the token is there when the
// client's call returns.
func (c *client) recordLSN() {
	sc := c.sc
	c.wrote = false
	// The insert position, not pg_current_wal_lsn() (the write position),
	// which lags the commit record under synchronous_commit = off.
	v, err := sc.internal("SELECT pg_current_wal_insert_lsn()")
	if err != nil {
		sc.broken = true
		return
	}
	lsn, ok := parseLSN(v)
	if !ok {
		return
	}
	lsn = recordEnd(lsn)
	if lsn > c.lsn {
		c.lsn = lsn
	}
	for old := c.p.maxLSN.Load(); lsn > old && !c.p.maxLSN.CompareAndSwap(old, lsn); old = c.p.maxLSN.Load() {
	}
	c.be.Send(&pgproto3.ParameterStatus{Name: "dbproxy_lsn", Value: formatLSN(c.lsn)})
}

func formatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// noteWrite invalidates cached tables a write names, before it runs.
func (c *client) noteWrite(ctx context.Context, msg pgproto3.FrontendMessage) {
	switch m := msg.(type) {
	case *pgproto3.Query:
		c.cacheInvalidate(ctx, m.String)
	case *pgproto3.Parse:
		c.cacheInvalidate(ctx, m.Query)
	case *pgproto3.Bind:
		if st := c.stmts[m.PreparedStatement]; st != nil && m.PreparedStatement != "" {
			c.cacheInvalidate(ctx, st.Query)
		}
	}
}

// endWrites bumps the written tables' generations again once the
// transaction is over, so results read before the commit are unreachable.
func (c *client) endWrites() {
	if c.p.cache == nil || len(c.dirty) == 0 {
		return
	}
	c.p.cache.bump(context.Background(), c.db, c.dirty)
	c.dirty = c.dirty[:0]
}

// leave returns or closes the server connection when the client goes.
func (c *client) leave() {
	defer c.endWrites()
	sc := c.sc
	if sc == nil {
		return
	}
	c.mu.Lock()
	c.sc = nil
	c.mu.Unlock()
	if len(c.queue) > 0 || c.unsynced {
		sc.broken = true
		sc.pool.discard(sc)
		return
	}
	if c.p.cfg.PoolMode == PoolSession {
		if c.status != 'I' {
			if _, err := sc.internal("ROLLBACK"); err != nil {
				sc.broken = true
			}
		}
		if _, err := sc.internal("DISCARD ALL"); err != nil {
			sc.broken = true
		}
		clear(sc.prepared)
	} else if c.status != 'I' {
		sc.broken = true
	}
	sc.pool.release(sc)
}

// internal runs sql on sc for the proxy's own purposes and returns the
// first column of the first row. The client sees nothing of it.
func (sc *serverConn) internal(sql string) (string, error) {
	sc.fe.Send(&pgproto3.Query{String: sql})
	if err := sc.fe.Flush(); err != nil {
		return "", err
	}
	var val string
	var qerr error
	got := false
	for {
		msg, err := sc.fe.Receive()
		if err != nil {
			return "", err
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if !got && len(m.Values) > 0 {
				val, got = string(m.Values[0]), true
			}
		case *pgproto3.ParameterStatus:
			sc.params[m.Name] = m.Value
		case *pgproto3.ErrorResponse:
			qerr = fmt.Errorf("dbproxy: %s: %s (%s)", sql, m.Message, m.Code)
		case *pgproto3.ReadyForQuery:
			return val, qerr
		}
	}
}

// recordEnd turns the insert position into the end of the last record: at
// the start of a WAL page the insert position already points past the page
// header (24 bytes, 40 at a segment start), which a standby's replay
// position would never reach while the primary stays idle.
func recordEnd(lsn uint64) uint64 {
	const page, segment = 8192, 16 << 20
	switch {
	case lsn%segment == 40:
		return lsn - 40
	case lsn%page == 24:
		return lsn - 24
	}
	return lsn
}

// parseLSN reads a pg_lsn such as 0/16B3748.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}
