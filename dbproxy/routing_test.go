package dbproxy

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/celeriac/celeriac/internal/testenv"
)

// TestRouting asks each statement's server whether it is a standby.
func TestRouting(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	p := startProxy(t, Config{
		Primary:  cl.primary.url("postgres", "", "postgres"),
		Replicas: []string{cl.replica.url("postgres", "", "postgres")},
		AuthType: AuthTrust,
	})
	ctx := context.Background()
	c := connect(t, proxyURL(p, "postgres", "", "postgres"))
	tbl := testenv.Prefix(t)
	if _, err := c.Exec(ctx, "CREATE TABLE "+tbl+" (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO "+tbl+" VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE FUNCTION "+tbl+"_vol() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE FUNCTION "+tbl+"_imm() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'"); err != nil {
		t.Fatal(err)
	}
	// Reads reach the replica once it has replayed this client's writes.
	eventually(t, "read on replica", func() bool { return inRecovery(t, c, "SELECT pg_is_in_recovery()") })

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		tests := []struct {
			name    string
			sql     string
			replica bool
		}{
			{"select", "SELECT pg_is_in_recovery() FROM " + tbl, true},
			{"stable_function", "SELECT pg_is_in_recovery() WHERE now() IS NOT NULL", true},
			{"immutable_user_function", "SELECT pg_is_in_recovery() WHERE " + tbl + "_imm() = 1", true},
			{"volatile_builtin", "SELECT pg_is_in_recovery() WHERE random() >= 0", false},
			{"volatile_user_function", "SELECT pg_is_in_recovery() WHERE " + tbl + "_vol() = 1", false},
			{"for_update", "SELECT pg_is_in_recovery() FROM " + tbl + " FOR UPDATE", false},
			{"for_no_key_update", "SELECT pg_is_in_recovery() FROM " + tbl + " FOR NO KEY UPDATE", false},
			{"cte_write", "WITH u AS (UPDATE " + tbl + " SET v = 'b' RETURNING 1) SELECT pg_is_in_recovery() FROM u", false},
			{"hint", "/* dbproxy:primary */ SELECT pg_is_in_recovery()", false},
		}
		for _, tc := range tests {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				// The write CTE moved this client's LSN; wait for replay so
				// only the statement's class decides.
				eventually(t, "replica caught up", func() bool {
					return inRecovery(t, c, "SELECT pg_is_in_recovery()")
				})
				var rec bool
				if err := c.QueryRow(ctx, tc.sql, mode).Scan(&rec); err != nil {
					t.Fatal(err)
				}
				if rec != tc.replica {
					t.Errorf("%s ran on a standby: %v, want %v", tc.sql, rec, tc.replica)
				}
			})
		}
	}

	t.Run("transaction_on_primary", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var rec bool
		if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
			t.Fatal(err)
		}
		if rec {
			t.Error("a read inside BEGIN went to the standby")
		}
	})
}
