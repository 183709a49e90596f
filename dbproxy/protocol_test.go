package dbproxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// rawClient logs in through the proxy with pgconn and then speaks
// pgproto3 directly, to send sequences pgx does not.
func rawClient(t *testing.T, url string) *pgproto3.Frontend {
	t.Helper()
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	return pgproto3.NewFrontend(hc.Conn, hc.Conn)
}

func expect(t *testing.T, fe *pgproto3.Frontend, want ...string) {
	t.Helper()
	for _, w := range want {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("waiting for %s: %v", w, err)
		}
		got := typeName(msg)
		if got != w {
			t.Fatalf("got %s (%+v), want %s", got, msg, w)
		}
	}
}

func typeName(m pgproto3.BackendMessage) string {
	switch m.(type) {
	case *pgproto3.ParseComplete:
		return "ParseComplete"
	case *pgproto3.BindComplete:
		return "BindComplete"
	case *pgproto3.DataRow:
		return "DataRow"
	case *pgproto3.CommandComplete:
		return "CommandComplete"
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery"
	case *pgproto3.ErrorResponse:
		return "ErrorResponse"
	case *pgproto3.RowDescription:
		return "RowDescription"
	case *pgproto3.CloseComplete:
		return "CloseComplete"
	}
	return "other"
}

// TestFlushAndPipeline: Flush gets replies without a Sync and keeps the
// server connection; several Syncs in one write are answered in order.
func TestFlushAndPipeline(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := trustProxy(t, cl, PoolTransaction, 1)
	fe := rawClient(t, proxyURL(p, "postgres", "", "postgres"))
	fe.Send(&pgproto3.Parse{Name: "f1", Query: "SELECT 7"})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expect(t, fe, "ParseComplete")
	fe.Send(&pgproto3.Bind{PreparedStatement: "f1"})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	// A pipeline: a failing statement, then one that must still run.
	fe.Send(&pgproto3.Parse{Query: "SELEC 1"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Bind{PreparedStatement: "f1"})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Close{ObjectType: 'S', Name: "f1"})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expect(t, fe, "BindComplete", "DataRow", "CommandComplete", "ReadyForQuery",
		"ErrorResponse", "ReadyForQuery",
		"BindComplete", "DataRow", "CommandComplete", "CloseComplete", "ReadyForQuery")

	// pgx's batch: pipelined Parse/Describe then Bind/Execute.
	c := connect(t, proxyURL(p, "postgres", "", "postgres"))
	b := &pgx.Batch{}
	for i := range 10 {
		b.Queue("SELECT $1::int * 2", i)
	}
	br := c.SendBatch(context.Background(), b)
	for i := range 10 {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 2*i {
			t.Fatalf("batch %d: %d, %v", i, n, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownDrains: Shutdown waits for a transaction in progress to
// finish, refuses new clients, and the client gets its COMMIT answered.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p, err := New(Config{Listen: "127.0.0.1:0", Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthTrust})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	idle := connect(t, proxyURL(p, "postgres", "", "postgres"))
	busy := connect(t, proxyURL(p, "postgres", "", "postgres"))
	if _, err := idle.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		done <- p.Shutdown(sctx)
	}()
	eventually(t, "idle client disconnected", func() bool {
		_, err := idle.Exec(ctx, "SELECT 1")
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned with a transaction open: %v", err)
	default:
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("transaction cut off by Shutdown: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("COMMIT during Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := pgx.Connect(ctx, proxyURL(p, "postgres", "", "postgres")); err == nil {
		t.Fatal("connected after Shutdown")
	}
	if err := p.Start(ctx); err != ErrClosed {
		t.Fatalf("Start after Shutdown: %v", err)
	}
}
