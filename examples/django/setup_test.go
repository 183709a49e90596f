package django_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/testenv"
)

// startTour creates a throwaway database, prepares the Django project
// (migrate, a user, collectstatic) and starts every server.
func startTour(t *testing.T, py, nginx, amqpURL, redisURL string) *tour {
	t.Helper()
	prefix := testenv.Prefix(t)
	bin := t.TempDir()
	buildPrograms(t, bin) // not under ctx: a cold build cache is slow
	// Setup (databases, migrate, collectstatic, servers) on a loaded
	// machine takes seconds; the deadline only stops a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	pair := startPGPair(t, ctx)
	createDatabase(t, ctx, pair.Primary, "tour")
	// Everything reaches the database through celeriac dbproxy, which
	// checks clients' passwords (SCRAM) against a userlist.
	dbPassword := randomHex(t, 12)
	userlist := filepath.Join(t.TempDir(), "userlist.txt")
	if err := os.WriteFile(userlist, []byte(fmt.Sprintf("%q %q\n", "postgres", dbPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	proxyAddr, proxyMetrics := freePort(t), freePort(t)
	dbproxy := startProc(t, "dbproxy", here, nil, filepath.Join(bin, "celeriac"), "dbproxy",
		"--config", "dbproxy.yaml", "--listen", proxyAddr, "--primary", pair.Primary, "--replica", pair.Replica,
		"--auth-file", userlist, "--metrics-listen", proxyMetrics)
	dbproxy.waitReady(t, 20*time.Second, httpOK("http://"+proxyMetrics+"/healthz", 200))
	dbURL := fmt.Sprintf("postgres://postgres:%s@%s/tour?sslmode=disable", dbPassword, proxyAddr)
	db, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	secret := randomHex(t, 32)
	staticRoot := t.TempDir()
	cacheURL := redisDB(t, redisURL, 1)
	djangoEnv := []string{
		"DJANGO_SECRET_KEY=" + secret,
		"DJANGO_DB_HOST=" + db.Hostname(), "DJANGO_DB_PORT=" + db.Port(),
		"DJANGO_DB_NAME=" + strings.TrimPrefix(db.Path, "/"), "DJANGO_DB_USER=" + db.User.Username(),
		"DJANGO_DB_PASSWORD=" + dbPassword,
		"DJANGO_CACHE_URL=" + cacheURL, "DJANGO_CACHE_PREFIX=" + prefix,
		"DJANGO_STATIC_ROOT=" + staticRoot,
		"CELERY_BROKER_URL=" + amqpURL, "CELERY_RESULT_BACKEND=" + redisURL,
		"CELERY_TASK_DEFAULT_QUEUE=" + prefix,
		"TOUR_LEDGER_PREFIX=" + prefix + ":ledger:",
		"PYTHONDONTWRITEBYTECODE=1",
	}
	manage := func(args ...string) string {
		return run(t, ctx, here, djangoEnv, py, append([]string{"manage.py"}, args...)...)
	}
	manage("migrate", "--noinput")
	manage("shell", "-c", fmt.Sprintf("from django.contrib.auth.models import User; User.objects.create_user(%q, password=%q)", username, password))
	manage("collectstatic", "--noinput")
	pair.waitReplayed(t, ctx) // the replica has the tables and the user

	tr := &tour{ledger: prefix + ":ledger:", dbURL: dbURL, py: py, here: here, env: djangoEnv, queue: prefix}
	// Registered first, run last: after every process has stopped.
	t.Cleanup(func() { cleanShared(t, prefix, redisURL, cacheURL) })
	tr.worker = startProc(t, "worker", here, nil, filepath.Join(bin, "worker"),
		"-broker", amqpURL, "-result-backend", redisURL, "-Q", prefix, "-default-queue", prefix, "-c", "2",
		"-n", "tour@%h", "-ledger-prefix", tr.ledger)

	sessionsAddr, staticAddr, greeterAddr, djangoAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	sessions := startProc(t, "sessions", here, []string{"DJANGO_SECRET_KEY=" + secret, "DATABASE_URL=" + dbURL},
		filepath.Join(bin, "celeriac"), "sessions", "--listen", sessionsAddr,
		"--engine", "cache", "--redis", cacheURL, "--cache-key-prefix", prefix)
	static := startProc(t, "static", here, nil, filepath.Join(bin, "celeriac"), "static",
		"--root", staticRoot, "--listen", staticAddr, "--prefix", "/static/", "--store", t.TempDir())
	greeter := startProc(t, "greeter", here, []string{"DATABASE_URL=" + dbURL}, filepath.Join(bin, "greeter"), "--listen", greeterAddr)
	django := startProc(t, "gunicorn", here, djangoEnv, py, "-m", "gunicorn", "--bind", djangoAddr,
		"--workers", "2", "--timeout", "30", "tour.wsgi:application")
	beat := startProc(t, "beat", here, nil, filepath.Join(bin, "celeriac"), "beat",
		"--schedule", "beat.yaml", "--broker", amqpURL, "--result-backend", redisURL,
		"--default-queue", prefix, "--name", prefix, "--lease", "2s")
	ngx := startNginx(t, nginx, map[string]string{
		"server 127.0.0.1:8081;": "server " + sessionsAddr + ";",
		"server 127.0.0.1:8000;": "server " + djangoAddr + ";",
		"server 127.0.0.1:8001;": "server " + greeterAddr + ";",
		"server 127.0.0.1:8002;": "server " + staticAddr + ";",
	})
	tr.base = "http://" + ngx.addr

	sessions.waitReady(t, 20*time.Second, httpOK("http://"+sessionsAddr+"/healthz", 200))
	static.waitReady(t, 20*time.Second, tcpOK(staticAddr))
	greeter.waitReady(t, 20*time.Second, httpOK("http://"+greeterAddr+"/healthz", 200))
	django.waitReady(t, 30*time.Second, httpOK("http://"+djangoAddr+"/accounts/login/", 200))
	tr.worker.waitReady(t, 20*time.Second, tr.worker.logContains("ready"))
	beat.waitReady(t, 20*time.Second, beat.logContains("beat started"))
	ngx.waitReady(t, 10*time.Second, httpOK(tr.base+"/accounts/login/", 200))
	return tr
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// redisDB is redisURL with its database number replaced.
func redisDB(t *testing.T, redisURL string, n int) string {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + strconv.Itoa(n)
	return u.String()
}

// createDatabase creates an empty database named name.
func createDatabase(t *testing.T, ctx context.Context, pgURL, name string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		testenv.Unavailable(t, "postgres %s: %v", pgURL, err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatal(err)
	}
}

type nginxProc struct {
	*proc
	addr string
}

// startNginx runs examples/nginx/nginx.conf, the file users copy, with its
// upstream addresses replaced by this test's.
func startNginx(t *testing.T, nginx string, upstreams map[string]string) *nginxProc {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freePort(t)
	conf := string(src)
	repl := map[string]string{
		"listen 8080;":           "listen " + addr + ";",
		"worker_processes auto;": fmt.Sprintf("worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;", dir, dir),
		"http {": fmt.Sprintf("http {\n    access_log %[1]s/access.log;\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n"+
			"    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;", dir),
	}
	for k, v := range upstreams {
		repl[k] = v
	}
	for old, new := range repl {
		if !strings.Contains(conf, old) {
			t.Fatalf("examples/nginx/nginx.conf no longer contains %q", old)
		}
		conf = strings.Replace(conf, old, new, 1)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "nginx", dir, nil, nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("--- nginx error.log:\n%s", tail(string(out), 3000))
		}
	})
	return &nginxProc{proc: p, addr: addr}
}

// cleanShared removes what the tour left on the shared servers: its
// RabbitMQ queue and its Redis keys (ledger, sessions, cache; results
// expire by themselves).
func cleanShared(t *testing.T, prefix string, redisURLs ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range redisURLs {
		opt, err := goredis.ParseURL(u)
		if err != nil {
			t.Error(err)
			continue
		}
		rdb := goredis.NewClient(opt)
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("cleaning %s: %v", u, err)
		}
		rdb.Close()
	}
	// The queue is durable, as Celery declares it. rabbitmqctl is there
	// when RabbitMQ runs on this machine; elsewhere the queue stays.
	if ctl, err := exec.LookPath("rabbitmqctl"); err == nil {
		if out, err := exec.CommandContext(ctx, ctl, "-q", "delete_queue", prefix).CombinedOutput(); err != nil {
			t.Logf("rabbitmqctl delete_queue %s: %v %s", prefix, err, out)
		}
	}
}
