package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/celeriac/celeriac/dbproxy"
	"github.com/celeriac/celeriac/internal/testenv"
)

func TestDBProxyFlags(t *testing.T) {
	t.Parallel()
	f, err := parseDBProxyFlags(quietEnv(nil), []string{
		"--listen", "127.0.0.1:7000", "--primary", "postgres://u@p/db", "--replica", "postgres://u@r1/db",
		"--replica", "postgres://u@r2/db", "--pool-mode", "session", "--pool-size", "7", "--auth-file", "/etc/u.txt",
		"--auth-type", "md5", "--metrics-listen", ":9187",
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if c.Listen != "127.0.0.1:7000" || c.Primary != "postgres://u@p/db" || strings.Join(c.Replicas, " ") != "postgres://u@r1/db postgres://u@r2/db" ||
		c.PoolMode != dbproxy.PoolSession || c.PoolSize != 7 || c.AuthFile != "/etc/u.txt" || c.AuthType != "md5" || f.metricsAddr != ":9187" {
		t.Errorf("got %+v metrics=%q", c, f.metricsAddr)
	}

	// The example config parses, and flags override it.
	f, err = parseDBProxyFlags(quietEnv(nil), []string{"--config", "../../examples/dbproxy.yaml", "--pool-size", "3"})
	if err != nil {
		t.Fatal(err)
	}
	c = f.cfg
	if c.PoolSize != 3 || c.MinIdle != 2 || c.ServerIdleTimeout != 10*time.Minute || c.HealthInterval != 100*time.Millisecond ||
		len(c.Replicas) != 1 || c.AuthType != "scram-sha-256" || f.metricsAddr != "127.0.0.1:9187" {
		t.Errorf("from examples/dbproxy.yaml: %+v", c)
	}
}

func TestDBProxyBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},                                 // no primary
		{"--primary", "postgres://p", "x"}, // stray argument
		{"--bogus"},                        // unknown flag
		{"--primary", "postgres://p", "--pool-size", "many"},
	} {
		if _, err := parseDBProxyFlags(quietEnv(nil), args); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want usage error", args, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("primary: postgres://p\npool_sise: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseDBProxyFlags(quietEnv(nil), []string{"--config", bad}); err == nil || !strings.Contains(err.Error(), "pool_sise") {
		t.Errorf("misspelt key: %v", err)
	}
	// Config the library refuses fails the command with the field named.
	err := runDBProxy(context.Background(), quietEnv(nil), []string{"--primary", "postgres://p/db", "--pool-mode", "statement"})
	if err == nil || !strings.Contains(err.Error(), "PoolMode") {
		t.Errorf("bad pool mode: %v", err)
	}
}

// TestDBProxyRuns starts the command against the local PostgreSQL, queries
// through it and reads its metrics.
func TestDBProxyRuns(t *testing.T) {
	t.Parallel()
	pg := testenv.PostgresURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	e := quietEnv(nil)
	e.stderr = logs
	done := make(chan error, 1)
	go func() {
		done <- runDBProxy(ctx, e, []string{"--primary", pg, "--listen", "127.0.0.1:0", "--auth-type", "trust", "--metrics-listen", "127.0.0.1:0"})
	}()
	addrRe := regexp.MustCompile(`dbproxy: listening"? addr=(\S+)`)
	metricsRe := regexp.MustCompile(`serving /metrics.* addr=(\S+)`)
	waitFor(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("runDBProxy returned early: %v\n%s", err, logs.String())
		default:
		}
		return addrRe.MatchString(logs.String())
	})
	addr := addrRe.FindStringSubmatch(logs.String())[1]
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query through dbproxy: %d, %v", n, err)
	}
	c.Close(ctx)
	m := metricsRe.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address in logs:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `dbproxy_routed_total{role="primary"} `) {
		t.Errorf("metrics lack dbproxy_routed_total:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runDBProxy: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("runDBProxy did not stop")
	}
}
