package dbproxy

import (
	"context"
	"testing"

	"github.com/celeriac/celeriac/internal/testenv"
)

// TestReadYourWrites pauses replay on a replica of its own: a client's read
// after its own write must not see the stale replica, while a client that
// wrote nothing still reads there.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	cl, rep, p := proxyOverOwnReplica(t)
	ctx := context.Background()
	tbl := testenv.Prefix(t)
	writer := connect(t, proxyURL(p, "postgres", "", "postgres"))
	reader := connect(t, proxyURL(p, "postgres", "", "postgres"))
	direct := connect(t, rep.url("postgres", "", "postgres"))
	if _, err := writer.Exec(ctx, "CREATE TABLE "+tbl+" (id int)"); err != nil {
		t.Fatal(err)
	}
	count := "SELECT pg_is_in_recovery(), count(*) FROM " + tbl
	eventually(t, "table replicated and read there", func() bool {
		var rec bool
		var n int
		return reader.QueryRow(ctx, count).Scan(&rec, &n) == nil && rec
	})
	if _, err := direct.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	defer direct.Exec(ctx, "SELECT pg_wal_replay_resume()")
	eventually(t, "replay paused", func() bool {
		var s string
		return direct.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&s) == nil && s == "paused"
	})

	if _, err := writer.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var rec bool
	var n int
	if err := writer.QueryRow(ctx, count).Scan(&rec, &n); err != nil {
		t.Fatal(err)
	}
	if rec || n != 1 {
		t.Fatalf("writer's read: standby=%v rows=%d, want the primary and its row", rec, n)
	}

	// The token travels: a client of another proxy instance that quotes
	// it reads on the primary; without it, on the stale replica.
	token := writer.PgConn().ParameterStatus("dbproxy_lsn")
	if _, ok := parseLSN(token); !ok {
		t.Fatalf("writer got no dbproxy_lsn token: %q", token)
	}
	p2 := startProxy(t, Config{
		Primary:  cl.primary.url("postgres", "", "postgres"),
		Replicas: []string{rep.url("postgres", "", "postgres")},
		AuthType: AuthTrust,
	})
	other := connect(t, proxyURL(p2, "postgres", "", "postgres"))
	eventually(t, "second proxy sees the replica", func() bool {
		return other.QueryRow(ctx, count).Scan(&rec, &n) == nil && rec
	})
	if n != 0 {
		t.Fatalf("paused replica shows %d rows", n)
	}
	if err := other.QueryRow(ctx, "/* dbproxy:lsn="+token+" */ "+count).Scan(&rec, &n); err != nil {
		t.Fatal(err)
	}
	if rec || n != 1 {
		t.Fatalf("read quoting the token: standby=%v rows=%d, want the primary and the row", rec, n)
	}
	if err := reader.QueryRow(ctx, count).Scan(&rec, &n); err != nil {
		t.Fatal(err)
	}
	if !rec || n != 0 {
		t.Fatalf("other client's read: standby=%v rows=%d, want the paused standby without the row", rec, n)
	}

	if _, err := direct.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "writer reads on the replica after replay", func() bool {
		return writer.QueryRow(ctx, count).Scan(&rec, &n) == nil && rec
	})
	if n != 1 {
		t.Fatalf("replica read after catching up: %d rows, want 1", n)
	}
}
