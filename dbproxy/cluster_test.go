package dbproxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/celeriac/celeriac/internal/testenv"
)

// pgServer is a PostgreSQL instance a test started on a loopback port.
type pgServer struct {
	dir  string
	port int
	bin  string
}

func (s *pgServer) url(user, password, db string) string {
	cred := user
	if password != "" {
		cred += ":" + password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", cred, s.port, db)
}

// pgCluster is a primary and a streaming replica shared by the package's
// tests, started once and stopped by TestMain.
type pgCluster struct {
	root             string
	primary, replica *pgServer
}

var (
	clusterOnce sync.Once
	cluster     *pgCluster
	clusterErr  error
)

// testCluster returns the shared primary+replica, starting them on first
// use; without PostgreSQL's server binaries the test is skipped (fails
// under REQUIRE_INTEGRATION=1).
func testCluster(t *testing.T) *pgCluster {
	t.Helper()
	testenv.Short(t)
	clusterOnce.Do(func() { cluster, clusterErr = startCluster() })
	if clusterErr != nil {
		testenv.Unavailable(t, "PostgreSQL primary+replica: %v", clusterErr)
	}
	return cluster
}

func stopCluster() {
	if cluster == nil {
		return
	}
	for _, s := range []*pgServer{cluster.replica, cluster.primary} {
		if s != nil {
			s.stop()
		}
	}
	_ = os.RemoveAll(cluster.root)
}

func pgBin() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(m) == 0 {
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/pg_ctl")
	}
	return filepath.Dir(m[len(m)-1]), nil
}

// pgCmd runs a PostgreSQL program, as the postgres user when we are root
// (the server refuses to run as root).
func pgCmd(bin string, args ...string) *exec.Cmd {
	if os.Getuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

func run(bin string, args ...string) error {
	out, err := pgCmd(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// mkdir makes a directory the server user owns.
func mkdir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	if os.Getuid() == 0 {
		return exec.Command("chown", "-R", "postgres:postgres", path).Run()
	}
	return nil
}

func startCluster() (*pgCluster, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "dbproxy-pg-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return nil, err
	}
	c := &pgCluster{root: root}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &pgServer{dir: filepath.Join(root, "primary"), port: port, bin: bin}
	if err := mkdir(p.dir); err != nil {
		return nil, err
	}
	if err := run(bin+"/initdb", "-D", p.dir, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8", "--locale=C"); err != nil {
		return c, err
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"wal_level = replica\nmax_wal_senders = 8\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"+
		"password_encryption = 'scram-sha-256'\nmax_connections = 200\nshared_buffers = 32MB\n", port, p.dir)
	if err := appendFile(filepath.Join(p.dir, "postgresql.conf"), conf); err != nil {
		return c, err
	}
	// A password is demanded of the users whose names say so, so the proxy's
	// server-side SCRAM and md5 are exercised; the rest is trust.
	hba := "host all scram_user 127.0.0.1/32 scram-sha-256\nhost all md5_user 127.0.0.1/32 md5\n"
	old, err := os.ReadFile(filepath.Join(p.dir, "pg_hba.conf"))
	if err != nil {
		return c, err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "pg_hba.conf"), append([]byte(hba), old...), 0o600); err != nil {
		return c, err
	}
	if err := p.start(); err != nil {
		return c, err
	}
	c.primary = p
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url("postgres", "", "postgres"))
	if err != nil {
		return c, err
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw' SUPERUSER",
		"SET password_encryption = 'md5'",
		"CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw' SUPERUSER",
		"CREATE ROLE app LOGIN SUPERUSER",
		"SET password_encryption = 'scram-sha-256'",
		// Has a password for auth_query, yet the server trusts it.
		"CREATE ROLE aq_user LOGIN PASSWORD 'aq-pw' SUPERUSER",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return c, fmt.Errorf("%s: %w", q, err)
		}
	}
	r, err := c.addReplica("replica")
	if err != nil {
		return c, err
	}
	c.replica = r
	return c, nil
}

// proxyOverOwnReplica starts a replica for t alone (tests that stop or
// pause it) and a trust-auth proxy over the shared primary and it.
func proxyOverOwnReplica(t *testing.T) (*pgCluster, *pgServer, *Proxy) {
	t.Helper()
	cl := testCluster(t)
	rep, err := cl.addReplica(testenv.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rep.stop)
	p := startProxy(t, Config{
		Primary:  cl.primary.url("postgres", "", "postgres"),
		Replicas: []string{rep.url("postgres", "", "postgres")},
		AuthType: AuthTrust,
	})
	return cl, rep, p
}

// addReplica starts a new streaming replica of the primary.
func (c *pgCluster) addReplica(name string) (*pgServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &pgServer{dir: filepath.Join(c.root, name), port: port, bin: c.primary.bin}
	if err := mkdir(r.dir); err != nil {
		return nil, err
	}
	if err := run(r.bin+"/pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(c.primary.port), "-U", "postgres",
		"-D", r.dir, "-R", "-X", "stream", "-c", "fast"); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("\nport = %d\nunix_socket_directories = '%s'\nhot_standby = on\n", port, r.dir)
	if err := appendFile(filepath.Join(r.dir, "postgresql.auto.conf"), conf); err != nil {
		return nil, err
	}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *pgServer) start() error {
	return run(s.bin+"/pg_ctl", "-D", s.dir, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "start")
}

func (s *pgServer) stop() {
	_ = run(s.bin+"/pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop")
}
