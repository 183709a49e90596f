package dbproxy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/celeriac/celeriac/internal/testenv"
)

func trustProxy(t *testing.T, cl *pgCluster, mode PoolMode, size int) *Proxy {
	t.Helper()
	return startProxy(t, Config{Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthTrust,
		PoolMode: mode, PoolSize: size, AdminUsers: []string{"postgres"}})
}

// serverPIDs counts the distinct server connections seen by the queries.
func backendPID(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var pid int
	if err := c.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestPreparedStatementsTransactionMode runs clients whose named statements
// share one name with different texts, over a single server connection,
// and pgx's own statement cache over two.
func TestPreparedStatementsTransactionMode(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolTransaction, 1)
	ctx := context.Background()
	a := connect(t, proxyURL(p, "postgres", "", "postgres"))
	b := connect(t, proxyURL(p, "postgres", "", "postgres"))
	if backendPID(t, a) != backendPID(t, b) {
		t.Fatal("pool of one lent two server connections")
	}
	if _, err := a.PgConn().Prepare(ctx, "s1", "SELECT 'a' || $1::text", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PgConn().Prepare(ctx, "s1", "SELECT 'b' || $1::text || 'b'", nil); err != nil {
		t.Fatal(err)
	}
	exec := func(c *pgx.Conn, arg string) string {
		t.Helper()
		res := c.PgConn().ExecPrepared(ctx, "s1", [][]byte{[]byte(arg)}, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return string(res.Rows[0][0])
	}
	for i := range 3 {
		if got := exec(a, "x"); got != "ax" {
			t.Fatalf("round %d: a got %q", i, got)
		}
		if got := exec(b, "y"); got != "byb" {
			t.Fatalf("round %d: b got %q", i, got)
		}
	}
	// Closing on one client leaves the other's statement alone.
	if err := a.PgConn().Deallocate(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if got := exec(b, "z"); got != "bzb" {
		t.Fatalf("after a's close, b got %q", got)
	}
	res := a.PgConn().ExecPrepared(ctx, "s1", nil, nil, nil).Read()
	var pe *pgconn.PgError
	if !errors.As(res.Err, &pe) || pe.Code != "26000" {
		t.Fatalf("executing a closed statement: %v, want 26000", res.Err)
	}
	// After the error the client goes on.
	if got := exec(b, "w"); got != "bwb" {
		t.Fatalf("b after a's error got %q", got)
	}

	// pgx's statement cache (named statements) across concurrent clients.
	p2 := trustProxy(t, cl, PoolTransaction, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		c := connect(t, proxyURL(p2, "postgres", "", "postgres"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				var n int
				if err := c.QueryRow(ctx, "SELECT $1::int + $2::int", i, j).Scan(&n); err != nil || n != i+j {
					errs <- errors.Join(err, errors.New("wrong sum"))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestCancel cancels a running query with the proxy-issued key.
func TestCancel(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolTransaction, 2)
	ctx := context.Background()
	c := connect(t, proxyURL(p, "postgres", "", "postgres"))
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	// Wait until the query runs on a server.
	eventually(t, "query running", func() bool {
		c.PgConn()
		p.clientsMu.Lock()
		defer p.clientsMu.Unlock()
		for _, cc := range p.clients {
			cc.mu.Lock()
			busy := cc.sc != nil
			cc.mu.Unlock()
			if busy {
				return true
			}
		}
		return false
	})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.PgConn().CancelRequest(cctx); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("cancelled query: %v, want 57014", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// The connection works after the cancel.
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestSessionModeReset checks DISCARD ALL between session-mode clients.
func TestSessionModeReset(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolSession, 1)
	ctx := context.Background()
	a, err := pgx.Connect(ctx, proxyURL(p, "postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, a)
	for _, q := range []string{"SET work_mem = '7MB'", "PREPARE q AS SELECT 1", "CREATE TEMP TABLE tmp (a int)"} {
		if _, err := a.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	a.Close(ctx)
	b := connect(t, proxyURL(p, "postgres", "", "postgres"))
	if backendPID(t, b) != pid {
		t.Fatal("session pool of one used a new server connection")
	}
	var wm string
	if err := b.QueryRow(ctx, "SHOW work_mem").Scan(&wm); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name = 'q'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if wm == "7MB" || n != 0 {
		t.Fatalf("session state leaked: work_mem=%s prepared=%d", wm, n)
	}
	if _, err := b.Exec(ctx, "SELECT * FROM tmp"); err == nil {
		t.Fatal("temp table survived DISCARD ALL")
	}
}

// TestParameterSync: in transaction mode each client keeps its own
// TimeZone and application_name over one shared server connection.
func TestParameterSync(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolTransaction, 1)
	ctx := context.Background()
	a := connect(t, proxyURL(p, "postgres", "", "postgres")+"&timezone=Asia/Tokyo&application_name=app_a")
	b := connect(t, proxyURL(p, "postgres", "", "postgres")+"&timezone=UTC")
	show := func(c *pgx.Conn, what string) string {
		var s string
		if err := c.QueryRow(ctx, "SHOW "+what).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for range 2 {
		if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
			t.Errorf("a TimeZone %q", got)
		}
		if got := show(b, "TimeZone"); got != "UTC" {
			t.Errorf("b TimeZone %q", got)
		}
		if got := show(a, "application_name"); got != "app_a" {
			t.Errorf("a application_name %q", got)
		}
	}
	if _, err := b.Exec(ctx, "SET TIME ZONE 'Europe/Paris'"); err != nil {
		t.Fatal(err)
	}
	if got := show(a, "TimeZone"); got != "Asia/Tokyo" {
		t.Errorf("a TimeZone after b's SET %q", got)
	}
	if got := show(b, "TimeZone"); got != "Europe/Paris" {
		t.Errorf("b TimeZone after its SET %q", got)
	}
	if got := b.PgConn().ParameterStatus("TimeZone"); got != "Europe/Paris" {
		t.Errorf("b's ParameterStatus TimeZone %q", got)
	}
	// A setting the proxy cannot carry across server connections is refused.
	_, err := pgx.Connect(ctx, proxyURL(p, "postgres", "", "postgres")+"&search_path=other")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08P01" || !strings.Contains(pe.Message, "search_path") {
		t.Errorf("search_path startup parameter: %v", err)
	}
}

// TestCopyAndAdmin streams COPY FROM STDIN through the proxy and reads the
// admin views.
func TestCopyAndAdmin(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolTransaction, 2)
	ctx := context.Background()
	c := connect(t, proxyURL(p, "postgres", "", "postgres"))
	tbl := testenv.Prefix(t)
	if _, err := c.Exec(ctx, "CREATE TABLE "+tbl+" (a int, b text)"); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = []any{i, strings.Repeat("x", i%50)}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{tbl}, []string{"a", "b"}, pgx.CopyFromRows(rows))
	if err != nil || n != 5000 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	var sum int
	if err := c.QueryRow(ctx, "SELECT sum(a) FROM "+tbl).Scan(&sum); err != nil || sum != 4999*5000/2 {
		t.Fatalf("sum %d, %v", sum, err)
	}

	admin := connect(t, proxyURL(p, "postgres", "", "dbproxy")+"&default_query_exec_mode=simple_protocol")
	for _, cmd := range []string{"SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW STATS", "SHOW REPLICAS"} {
		rs, err := admin.Query(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for rs.Next() {
			count++
		}
		if rs.Err() != nil || count == 0 {
			t.Errorf("%s: %d rows, %v", cmd, count, rs.Err())
		}
	}
	var db, user, server, clActive, clWaiting, svActive, svIdle, mode string
	if err := admin.QueryRow(ctx, "SHOW POOLS").Scan(&db, &user, &server, &clActive, &clWaiting, &svActive, &svIdle, &mode); err != nil {
		t.Fatal(err)
	}
	if db != "postgres" || server != "primary" || svIdle != "1" || mode != "transaction" {
		t.Errorf("SHOW POOLS row: %s %s %s idle=%s %s", db, user, server, svIdle, mode)
	}
	var lendings, queries, waited string
	if err := admin.QueryRow(ctx, "SHOW STATS").Scan(&db, &user, &server, &lendings, &queries, &waited); err != nil {
		t.Fatal(err)
	}
	if lendings == "0" || queries == "0" {
		t.Errorf("SHOW STATS: lendings=%s queries=%s", lendings, queries)
	}
	if _, err := admin.Exec(ctx, "SHOW NONSENSE"); err == nil {
		t.Error("unknown admin command accepted")
	}
	if _, err := pgx.Connect(ctx, proxyURL(p, "app", "", "dbproxy")); err == nil {
		t.Error("non-admin user reached the admin console")
	}
}

// TestPoolLimits covers min idle, idle timeout, lifetime, the client cap
// and the wait timeout.
func TestPoolLimits(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	ctx := context.Background()
	primary := cl.primary.url("postgres", "", "postgres")

	t.Run("min_idle_and_idle_timeout", func(t *testing.T) {
		p := startProxy(t, Config{Primary: primary, AuthType: AuthTrust, PoolSize: 4, MinIdle: 3})
		c := connect(t, proxyURL(p, "postgres", "", "postgres"))
		backendPID(t, c)
		pl := p.pool(poolKey{db: "postgres", user: "postgres"})
		eventually(t, "three idle server connections", func() bool { _, idle, _ := pl.counts(); return idle == 3 })

		q := startProxy(t, Config{Primary: primary, AuthType: AuthTrust, ServerIdleTimeout: 200 * time.Millisecond})
		c = connect(t, proxyURL(q, "postgres", "", "postgres"))
		backendPID(t, c)
		ql := q.pool(poolKey{db: "postgres", user: "postgres"})
		eventually(t, "idle connection closed", func() bool { _, idle, _ := ql.counts(); return idle == 0 })
	})
	t.Run("lifetime", func(t *testing.T) {
		p := startProxy(t, Config{Primary: primary, AuthType: AuthTrust, ServerLifetime: time.Nanosecond})
		c := connect(t, proxyURL(p, "postgres", "", "postgres"))
		if a, b := backendPID(t, c), backendPID(t, c); a == b {
			t.Error("server connection outlived its lifetime")
		}
	})
	t.Run("max_client_conns", func(t *testing.T) {
		p := startProxy(t, Config{Primary: primary, AuthType: AuthTrust, MaxClientConns: 1})
		connect(t, proxyURL(p, "postgres", "", "postgres"))
		_, err := pgx.Connect(ctx, proxyURL(p, "postgres", "", "postgres"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" {
			t.Fatalf("second client: %v, want 53300", err)
		}
	})
	t.Run("wait_timeout", func(t *testing.T) {
		p := startProxy(t, Config{Primary: primary, AuthType: AuthTrust, PoolSize: 1, QueryWaitTimeout: 300 * time.Millisecond})
		a := connect(t, proxyURL(p, "postgres", "", "postgres"))
		b := connect(t, proxyURL(p, "postgres", "", "postgres"))
		tx, err := a.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := b.Exec(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "timed out waiting") {
			t.Fatalf("query with the pool exhausted: %v", err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("after the pool freed up: %v", err)
		}
	})
}
