package dbproxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/celeriac/celeriac/internal/testenv"
)

// TestQueryCache: a cached table's reads are served from Redis (proved by
// changing the row behind the proxy's back), and a write through the proxy
// makes the writer and everyone else read the new value at once.
func TestQueryCache(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	redisURL := testenv.RedisURL(t)
	tbl := testenv.Prefix(t)
	other := tbl + "_other"
	p := startProxy(t, Config{
		Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthTrust, AdminUsers: []string{"postgres"},
		CacheRedis: redisURL, CacheTables: []string{tbl}, CachePrefix: tbl + ":",
	})
	ctx := context.Background()
	simple := "&default_query_exec_mode=simple_protocol"
	a := connect(t, proxyURL(p, "postgres", "", "postgres")+simple)
	b := connect(t, proxyURL(p, "postgres", "", "postgres")+simple)
	direct := connect(t, cl.primary.url("postgres", "", "postgres"))
	for _, q := range []string{
		"CREATE TABLE " + tbl + " (id int PRIMARY KEY, v text)", "INSERT INTO " + tbl + " VALUES (1, 'one')",
		"CREATE TABLE " + other + " (id int PRIMARY KEY, v text)", "INSERT INTO " + other + " VALUES (1, 'one')",
	} {
		if _, err := a.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	read := func(c *pgx.Conn, table string) string {
		t.Helper()
		var v string
		if err := c.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := read(a, tbl); got != "one" {
		t.Fatalf("first read %q", got)
	}
	// Behind the proxy's back: the cached result stays.
	if _, err := direct.Exec(ctx, "UPDATE "+tbl+" SET v = 'sneaky'"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Exec(ctx, "UPDATE "+other+" SET v = 'sneaky'"); err != nil {
		t.Fatal(err)
	}
	if got := read(b, tbl); got != "one" {
		t.Fatalf("second read %q, want the cached 'one'", got)
	}
	if got := read(b, other); got != "sneaky" {
		t.Fatalf("uncached table read %q", got)
	}
	// Through the proxy: invalidated at once for the writer and others.
	if _, err := a.Exec(ctx, "UPDATE "+tbl+" SET v = 'two' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if got := read(a, tbl); got != "two" {
		t.Fatalf("writer read %q after its write", got)
	}
	if got := read(b, tbl); got != "two" {
		t.Fatalf("other client read %q after the write", got)
	}
	// A write inside a transaction: not visible before COMMIT, fresh after.
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE "+tbl+" SET v = 'three'"); err != nil {
		t.Fatal(err)
	}
	if got := read(b, tbl); got != "two" {
		t.Fatalf("read during the transaction %q", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(b, tbl); got != "three" {
		t.Fatalf("read after COMMIT %q, want three", got)
	}

	admin := connect(t, proxyURL(p, "postgres", "", "dbproxy")+simple)
	stats := map[string]string{}
	rows, err := admin.Query(ctx, "SHOW CACHE")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		stats[k] = v
	}
	if stats["enabled"] != "true" || stats["hits"] == "0" || stats["misses"] == "0" || stats["invalidations"] == "0" {
		t.Errorf("SHOW CACHE: %v", stats)
	}
}
