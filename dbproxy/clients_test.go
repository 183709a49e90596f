package dbproxy

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/celeriac/celeriac/internal/testenv"
)

// createDB makes a database of the test's own on the cluster and waits
// until the replica has it.
func createDB(t *testing.T, cl *pgCluster) string {
	t.Helper()
	name := testenv.Prefix(t)
	ctx := context.Background()
	c := connect(t, cl.primary.url("postgres", "", "postgres"))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	r := connect(t, cl.replica.url("postgres", "", "postgres"))
	eventually(t, "database on the replica", func() bool {
		var n int
		return r.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n) == nil && n == 1
	})
	return name
}

// TestDjangoORM drives Django's ORM over psycopg2 through a splitting,
// transaction-pooling proxy with SCRAM login.
func TestDjangoORM(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	py := testenv.Python(t, "django", "psycopg2")
	db := createDB(t, cl)
	p := startProxy(t, Config{
		Primary:  cl.primary.url("postgres", "", "postgres"),
		Replicas: []string{cl.replica.url("postgres", "", "postgres")},
		AuthFile: userlist(t, `"app" "app-secret"`),
		PoolSize: 2,
	})
	host, port, _ := strings.Cut(p.Addr().String(), ":")
	out, err := exec.Command(py, "testdata/django_orm.py", host, port, db, "app", "app-secret").CombinedOutput()
	if err != nil {
		t.Fatalf("django: %v\n%s", err, out)
	}
	for _, want := range []string{"read after write ok", "atomic ok", "iterator ok", "timezone Asia/Tokyo", "\nok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("django output lacks %q:\n%s", want, out)
		}
	}
	if p.m == nil {
		t.Fatal("no metrics")
	}
}

// TestPsqlAndPgbench: psql with a SCRAM password, then pgbench's
// initialisation (COPY) and a short TPC-B-like run through the proxy.
func TestPsqlAndPgbench(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	db := createDB(t, cl)
	p := startProxy(t, Config{
		Primary:  cl.primary.url("postgres", "", "postgres"),
		Replicas: []string{cl.replica.url("postgres", "", "postgres")},
		AuthFile: userlist(t, `"app" "app-secret"`),
		PoolSize: 4,
	})
	host, port, _ := strings.Cut(p.Addr().String(), ":")
	env := append(os.Environ(), "PGPASSWORD=app-secret", "PGHOST="+host, "PGPORT="+port, "PGUSER=app", "PGDATABASE="+db, "PGSSLMODE=disable")
	runTool := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(cl.primary.bin+"/"+name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	if out := runTool("psql", "-Atc", "SELECT current_user, pg_is_in_recovery()"); strings.TrimSpace(out) != "app|t" {
		t.Errorf("psql read: %q, want app|t", out)
	}
	runTool("pgbench", "-i", "-q", "-s", "1")
	out := runTool("pgbench", "-c", "4", "-j", "2", "-t", "50", "-M", "extended")
	if !strings.Contains(out, "number of failed transactions: 0") {
		t.Errorf("pgbench: %s", out)
	}
	out = runTool("pgbench", "-S", "-c", "4", "-j", "4", "-t", "200", "-M", "prepared")
	if !strings.Contains(out, "number of failed transactions: 0") {
		t.Errorf("pgbench -S -M prepared: %s", out)
	}
}
