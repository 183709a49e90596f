package django_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/celeriac/celeriac/internal/testenv"
)

// pgPair is a PostgreSQL primary and a streaming replica of it, made for
// one test with Debian's initdb and pg_basebackup on free loopback ports
// (the shared server allows no replication connections) and removed at
// cleanup. Setting them up takes about a second.
type pgPair struct {
	Primary, Replica string // postgres:// URLs of the postgres database
}

// pgBinDir finds Debian's PostgreSQL server programs.
func pgBinDir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	testenv.Unavailable(t, "PostgreSQL server programs (initdb, pg_basebackup) not found")
	return ""
}

func startPGPair(t *testing.T, ctx context.Context) *pgPair {
	t.Helper()
	bin := pgBinDir(t)
	// PostgreSQL refuses to run as root: run it as the postgres user then,
	// in a directory that user owns.
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "celeriac-tour-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testenv.Unavailable(t, "running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 3000))
		}
	}
	primary, replica := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")
	pPort, rPort := port(t), port(t)
	pg("initdb", "-D", primary, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	appendFile(t, filepath.Join(primary, "postgresql.conf"), fmt.Sprintf(
		"listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
			"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nwal_level = replica\nmax_wal_senders = 4\nshared_buffers = 16MB\n", pPort, dir))
	appendFile(t, filepath.Join(primary, "pg_hba.conf"), "host replication all 127.0.0.1/32 trust\n")
	stop := func(data string) {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		_ = cmd.Run()
	}
	pg("pg_ctl", "-D", primary, "-l", filepath.Join(dir, "primary.log"), "-w", "start")
	t.Cleanup(func() { stop(primary) })
	pg("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(pPort), "-U", "postgres", "-D", replica, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	appendFile(t, filepath.Join(replica, "postgresql.conf"), fmt.Sprintf("port = %d\nhot_standby = on\n", rPort))
	pg("pg_ctl", "-D", replica, "-l", filepath.Join(dir, "replica.log"), "-w", "start")
	t.Cleanup(func() { stop(replica) })
	return &pgPair{
		Primary: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pPort),
		Replica: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", rPort),
	}
}

func port(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freePort(t))
	n, _ := strconv.Atoi(p)
	return n
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// waitReplayed waits until the replica has replayed everything the
// primary has written so far, so what setup wrote is readable from it.
func (p *pgPair) waitReplayed(t *testing.T, ctx context.Context) {
	t.Helper()
	pc, err := pgx.Connect(ctx, p.Primary)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var lsn string
	if err := pc.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	rc, err := pgx.Connect(ctx, p.Replica)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done bool
		if err := rc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica has not replayed %s after 20 s", lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
