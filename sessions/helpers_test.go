package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dropTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const testSecret = "go-django-interop-test-secret"

// The migrated Django schema is built once per run in a template database;
// each test clones it (a fraction of a second) instead of migrating.
var tmpl struct {
	once sync.Once
	name string
	err  error
	mu   sync.Mutex // PostgreSQL clones one database from a template at a time
	base string     // server URL
}

func dropTemplate() {
	if tmpl.name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := pgx.Connect(ctx, tmpl.base); err == nil {
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{tmpl.name}.Sanitize()+" WITH (FORCE)")
		_ = c.Close(ctx)
	}
}

func withDB(base, db string) string {
	u, _ := url.Parse(base)
	u.Path = "/" + db
	return u.String()
}

// djangoEnv is the environment that points the test Django site at one
// database and cache.
type djangoEnv struct {
	t      *testing.T
	py     string
	env    []string
	dbName string
	dbURL  string
	prefix string
}

// testDatabase clones the migrated schema into a database of this test's
// own, dropped at cleanup.
func testDatabase(t *testing.T) (name, dsn string) {
	t.Helper()
	base := testenv.PostgresURL(t)
	py := testenv.Python(t, "django", "psycopg2")
	tmpl.once.Do(func() {
		tmpl.base = base
		name := testenv.Prefix(t) + "_tmpl"
		if tmpl.err = adminExec(base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); tmpl.err != nil {
			return
		}
		tmpl.name = name
		d := &djangoEnv{t: t, py: py, env: pgEnv(base, name)}
		_, tmpl.err = d.tryRun("migrate")
	})
	if tmpl.err != nil {
		t.Fatalf("template database: %v", tmpl.err)
	}
	name = testenv.Prefix(t)
	tmpl.mu.Lock()
	err := adminExec(base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tmpl.name}.Sanitize())
	tmpl.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := adminExec(base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return name, withDB(base, name)
}

func adminExec(base, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

func pgEnv(base, db string) []string {
	u, _ := url.Parse(base)
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	user, pw := "postgres", ""
	if u.User != nil {
		user = u.User.Username()
		pw, _ = u.User.Password()
	}
	return []string{"DJ_DB_NAME=" + db, "DJ_DB_HOST=" + u.Hostname(), "DJ_DB_PORT=" + port,
		"DJ_DB_USER=" + user, "DJ_DB_PASSWORD=" + pw}
}

// newDjango prepares a Django site for this test: its own database, and
// for cache engines its own KEY_PREFIX.
func newDjango(t *testing.T, engine, cache string, extra ...string) *djangoEnv {
	t.Helper()
	name, dsn := testDatabase(t)
	d := &djangoEnv{t: t, py: testenv.Python(t, "django", "django_redis", "pymemcache"),
		dbName: name, dbURL: dsn, prefix: testenv.Prefix(t)}
	d.env = append(pgEnv(testenv.PostgresURL(t), name),
		"DJ_SECRET_KEY="+testSecret,
		"DJ_SESSION_ENGINE=django.contrib.sessions.backends."+engine,
		"DJ_CACHE="+cache, "DJ_KEY_PREFIX="+d.prefix)
	switch cache {
	case "redis", "redis-json":
		d.env = append(d.env, "DJ_REDIS_URL="+testenv.RedisURL(t))
	case "memcached":
		d.env = append(d.env, "DJ_MEMCACHED="+testenv.MemcachedAddr(t))
	}
	d.env = append(d.env, extra...)
	return d
}

func (d *djangoEnv) tryRun(args ...string) (map[string]any, error) {
	tool, _ := filepath.Abs(filepath.Join("testdata", "djsite", "tool.py"))
	cmd := exec.Command(d.py, append([]string{tool}, args...)...)
	cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"), d.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tool.py %v: %w\n%s", args, err, stderr.String())
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("tool.py %v: bad output %q: %w", args, out, err)
	}
	return v, nil
}

// run executes one tool.py command and returns its JSON answer.
func (d *djangoEnv) run(args ...string) map[string]any {
	d.t.Helper()
	v, err := d.tryRun(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return v
}

func (d *djangoEnv) pool() *pgxpool.Pool {
	d.t.Helper()
	p, err := pgxpool.New(context.Background(), d.dbURL)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(p.Close)
	return p
}

func (d *djangoEnv) redisCache(serializer CacheSerializer) *RedisCache {
	d.t.Helper()
	opt, err := redis.ParseURL(testenv.RedisURL(d.t))
	if err != nil {
		d.t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	d.t.Cleanup(func() {
		// Remove this test's keys, then close.
		ctx := context.Background()
		iter := rc.Scan(ctx, 0, d.prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
		_ = rc.Close()
	})
	c, err := NewRedisCache(RedisConfig{Client: rc, KeyPrefix: d.prefix, Serializer: serializer})
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

func (d *djangoEnv) memcachedCache() *MemcachedCache {
	d.t.Helper()
	c, err := NewMemcachedCache(MemcachedConfig{Client: memcache.New(testenv.MemcachedAddr(d.t)), KeyPrefix: d.prefix})
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}
