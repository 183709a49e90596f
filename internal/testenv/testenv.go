// Package testenv finds the real servers and programs that integration tests
// talk to: RabbitMQ, Redis, PostgreSQL, Memcached and Debian's Python with
// Celery and Django.
//
// Each lookup returns an address that answers, or stops the test: with a skip
// that names the environment variable to set, or — when REQUIRE_INTEGRATION=1,
// as in CI — with a failure, so a missing server can never pass silently.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Required reports whether integration tests must run (REQUIRE_INTEGRATION=1).
func Required() bool {
	v := os.Getenv("REQUIRE_INTEGRATION")
	return v == "1" || strings.EqualFold(v, "true")
}

// Unavailable stops t because what it needs is missing: a skip normally, a
// fatal error when integration tests are required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("integration dependency missing (REQUIRE_INTEGRATION=1): %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// Short skips t under `go test -short`, which runs only unit tests.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
}

func lookup(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

var dialCache sync.Map // host:port -> error

func reachable(hostport string) error {
	if v, ok := dialCache.Load(hostport); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err == nil {
		c.Close()
		dialCache.Store(hostport, nil)
		return nil
	}
	dialCache.Store(hostport, err)
	return err
}

func server(t testing.TB, env, def, defPort string) string {
	t.Helper()
	Short(t)
	raw := lookup(env, def)
	u, err := url.Parse(strings.Split(raw, ";")[0])
	if err != nil {
		t.Fatalf("testenv: bad %s=%q: %v", env, raw, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defPort)
	}
	if err := reachable(host); err != nil {
		Unavailable(t, "%s (set %s): %v", raw, env, err)
	}
	return raw
}

// AMQPURL is the RabbitMQ under test (CELERIAC_TEST_AMQP_URL).
func AMQPURL(t testing.TB) string {
	t.Helper()
	return server(t, "CELERIAC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//", "5672")
}

// RedisURL is the Redis under test (CELERIAC_TEST_REDIS_URL), database 0.
func RedisURL(t testing.TB) string {
	t.Helper()
	return server(t, "CELERIAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", "6379")
}

// PostgresURL is the PostgreSQL under test (CELERIAC_TEST_POSTGRES_URL).
func PostgresURL(t testing.TB) string {
	t.Helper()
	return server(t, "CELERIAC_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "5432")
}

// MemcachedAddr is the Memcached under test (CELERIAC_TEST_MEMCACHED_ADDR).
func MemcachedAddr(t testing.TB) string {
	t.Helper()
	Short(t)
	addr := lookup("CELERIAC_TEST_MEMCACHED_ADDR", "127.0.0.1:11211")
	if err := reachable(addr); err != nil {
		Unavailable(t, "memcached at %s (set CELERIAC_TEST_MEMCACHED_ADDR): %v", addr, err)
	}
	return addr
}

var pyChecks sync.Map // module list -> error

// Python returns the Python interpreter that has Debian's Celery/Django
// (CELERIAC_TEST_PYTHON, default /usr/bin/python3), after checking that it
// imports each of modules.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	Short(t)
	py := lookup("CELERIAC_TEST_PYTHON", "/usr/bin/python3")
	if len(modules) == 0 {
		modules = []string{"celery"}
	}
	key := py + " " + strings.Join(modules, ",")
	v, ok := pyChecks.Load(key)
	if !ok {
		cmd := exec.Command(py, "-c", "import "+strings.Join(modules, ", "))
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		pyChecks.Store(key, err)
		v = err
	}
	if v != nil {
		Unavailable(t, "%s cannot import %v (set CELERIAC_TEST_PYTHON): %v", py, modules, v)
	}
	return py
}

// Program returns the path of an executable needed by a test, or stops the test.
func Program(t testing.TB, name string) string {
	t.Helper()
	Short(t)
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/postgresql"} {
			if _, serr := os.Stat(dir + "/" + name); serr == nil {
				return dir + "/" + name
			}
		}
		Unavailable(t, "program %q not found: %v", name, err)
	}
	return p
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// Prefix returns a name unique to this test run, usable as a queue name or key
// prefix, so tests can run in parallel against shared servers.
func Prefix(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

// FreePort returns a loopback TCP port nobody listens on right now, for a
// server the test starts itself.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: no free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
