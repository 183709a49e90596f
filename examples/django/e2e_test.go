// Package django_test runs the celeriac tour end to end: the Django project
// in this directory, its tasks on the Go worker (examples/worker), its
// sessions checked by `celeriac sessions` for a Go service behind nginx's
// auth_request, its collected static files served by `celeriac static`,
// its database behind `celeriac dbproxy` and a periodic task from
// `celeriac beat` — all started on loopback ports, driven as a user would
// with headless Chromium and an HTTP client, and torn down.
package django_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	username = "alice"
	password = "correct horse battery staple"
)

// tour is the running arrangement.
type tour struct {
	base   string // nginx, the only address a user sees
	worker *proc
	ledger string // tasks.credit's key prefix
	dbURL  string // the Django database through dbproxy
	// For Python processes started later: the interpreter, the project
	// directory, Django's environment and the tour's queue.
	py, here string
	env      []string
	queue    string
}

func TestTour(t *testing.T) {
	testenv.Short(t)
	py := testenv.Python(t, "django", "celery", "django_redis", "redis", "psycopg2", "gunicorn")
	nginx := testenv.Program(t, "nginx")
	chromium := testenv.Program(t, "chromium")
	amqpURL := testenv.AMQPURL(t)
	redisURL := testenv.RedisURL(t)

	tr := startTour(t, py, nginx, amqpURL, redisURL)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("dbproxy", func(t *testing.T) { tr.checkDBProxy(t, ctx) })
	t.Run("python-callers", func(t *testing.T) { tr.pythonCallers(t, ctx) })
	t.Run("http", func(t *testing.T) { tr.httpClientVisit(t, ctx) })
	t.Run("chromium", func(t *testing.T) { tr.browserVisit(t, ctx, chromium) })
	t.Run("rollback", func(t *testing.T) { tr.rollbackToPython(t, ctx) })
}

var (
	csrfRE   = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)
	cssRE    = regexp.MustCompile(`/static/shop/style\.[0-9a-f]{12}\.css`)
	logoRE   = regexp.MustCompile(`url\("logo\.[0-9a-f]{12}\.svg"\)`)
	taskIDRE = regexp.MustCompile(`data-task-id="([0-9a-f-]{36})"`)
	beatRE   = regexp.MustCompile(`<span id="beat-credits">(\d+)</span>`)
)

// get fetches url and returns the response with its body read.
func get(t *testing.T, ctx context.Context, c *http.Client, method, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// location is a redirect's target as path?query: nginx writes absolute
// URLs, Django relative ones.
func location(resp *http.Response) string {
	u, err := resp.Location()
	if err != nil {
		return ""
	}
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", tail(page, 2000))
	}
	return m[1]
}

// newClient is a user agent that keeps cookies and shows redirects.
func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login logs c in with Django's own form.
func (tr *tour) login(t *testing.T, ctx context.Context, c *http.Client) {
	t.Helper()
	_, page := get(t, ctx, c, "GET", tr.base+"/accounts/login/", nil)
	resp, _ := get(t, ctx, c, "POST", tr.base+"/accounts/login/", url.Values{
		"csrfmiddlewaretoken": {csrf(t, page)}, "username": {username}, "password": {password}, "next": {"/"},
	}, "Referer", tr.base+"/accounts/login/")
	if resp.StatusCode != http.StatusFound || location(resp) != "/" {
		t.Fatalf("login: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, home := get(t, ctx, c, "GET", tr.base+"/", nil)
	if resp.StatusCode != 200 || !strings.Contains(home, "signed in as "+username) {
		t.Fatalf("home after login: %s\n%s", resp.Status, tail(home, 2000))
	}
}

// enqueue posts the home page's form and returns the result page and the
// two task ids in it, checking that it shows x+y and (x+y)*10.
func (tr *tour) enqueue(t *testing.T, ctx context.Context, c *http.Client, x, y int) (page string, ids []string) {
	t.Helper()
	_, home := get(t, ctx, c, "GET", tr.base+"/", nil)
	resp, _ := get(t, ctx, c, "POST", tr.base+"/enqueue/", url.Values{
		"csrfmiddlewaretoken": {csrf(t, home)}, "x": {strconv.Itoa(x)}, "y": {strconv.Itoa(y)},
	}, "Referer", tr.base+"/")
	loc := location(resp)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/calc/") {
		t.Fatalf("enqueue: %s, Location %q", resp.Status, loc)
	}
	resp, calc := get(t, ctx, c, "GET", tr.base+loc, nil)
	for _, want := range []string{
		fmt.Sprintf(`<output id="add-value">%d</output>`, x+y),
		fmt.Sprintf(`<output id="chain-value">%d</output>`, (x+y)*10),
	} {
		if resp.StatusCode != 200 || !strings.Contains(calc, want) {
			t.Fatalf("%s: %s; want %s in:\n%s", loc, resp.Status, want, tail(calc, 2000))
		}
	}
	for _, m := range taskIDRE.FindAllStringSubmatch(calc, -1) {
		ids = append(ids, m[1])
	}
	if len(ids) != 2 {
		t.Fatalf("want 2 task ids in the page:\n%s", calc)
	}
	return calc, ids
}

// httpClientVisit is the visit with a plain HTTP client: the details a
// browser hides (status codes, redirects, caching headers).
func (tr *tour) httpClientVisit(t *testing.T, ctx context.Context) {
	c := newClient(t)

	// Not logged in: nginx's auth_request gets 401 from celeriac sessions
	// and sends the visitor to Django's login page.
	resp, _ := get(t, ctx, c, "GET", tr.base+"/app/hello", nil)
	if resp.StatusCode != http.StatusFound || location(resp) != "/accounts/login/?next=/app/hello" {
		t.Fatalf("anonymous /app/hello: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	// A client cannot name its own user: nginx asks celeriac sessions and
	// overwrites the header.
	resp, _ = get(t, ctx, c, "GET", tr.base+"/app/hello", nil, "X-User-Id", "1")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("anonymous /app/hello with a forged X-User-Id: %s", resp.Status)
	}

	tr.login(t, ctx, c)
	_, home := get(t, ctx, c, "GET", tr.base+"/", nil)

	// The Go service behind forward auth knows who this is.
	resp, hello := get(t, ctx, c, "GET", tr.base+"/app/hello", nil)
	if resp.StatusCode != 200 || !strings.Contains(hello, "Hello, "+username+"!") {
		t.Fatalf("/app/hello: %s\n%s", resp.Status, hello)
	}

	// The page links the stylesheet by its hashed name; celeriac static
	// serves it compressed and cacheable for a year.
	css := cssRE.FindString(home)
	if css == "" {
		t.Fatalf("no hashed stylesheet in the page:\n%s", tail(home, 2000))
	}
	resp, _ = get(t, ctx, c, "GET", tr.base+css, nil, "Accept-Encoding", "br, gzip")
	cc := resp.Header.Get("Cache-Control")
	if resp.StatusCode != 200 || !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
		t.Fatalf("GET %s: %s, Cache-Control %q", css, resp.Status, cc)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "br" {
		t.Errorf("GET %s with Accept-Encoding br: Content-Encoding %q", css, enc)
	}
	resp, body := get(t, ctx, c, "GET", tr.base+css, nil, "Accept-Encoding", "identity")
	if resp.StatusCode != 200 || !logoRE.MatchString(body) {
		t.Fatalf("GET %s: %s; want the logo's hashed url() in:\n%s", css, resp.Status, body)
	}
	t.Logf("static: %s Cache-Control %q", css, cc)

	// Enqueue: Django sends tasks.add and a chain; the Go worker runs them
	// and the result page reads the results from Redis.
	_, ids := tr.enqueue(t, ctx, c, 40, 2)
	// No Python worker runs: the Go worker's log names the task.
	tr.worker.waitReady(t, 5*time.Second, tr.worker.logContains(ids[0]))

	// celeriac beat sends tasks.credit("beat", 1) every 2 s; the Go worker
	// credits the account and the home page shows the balance.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, home = get(t, ctx, c, "GET", tr.base+"/", nil)
		m := beatRE.FindStringSubmatch(home)
		if m == nil {
			t.Fatalf("no beat balance on the home page:\n%s", tail(home, 2000))
		}
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			t.Logf("beat has credited %d", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("celeriac beat's tasks.credit never reached the home page")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Logging out deletes the session from Redis: the Go service no
	// longer lets the old cookie in.
	resp, _ = get(t, ctx, c, "POST", tr.base+"/accounts/logout/", url.Values{"csrfmiddlewaretoken": {csrf(t, home)}}, "Referer", tr.base+"/")
	if resp.StatusCode != 200 && resp.StatusCode != http.StatusFound {
		t.Fatalf("logout: %s", resp.Status)
	}
	resp, _ = get(t, ctx, c, "GET", tr.base+"/app/hello", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("/app/hello after logout: %s", resp.Status)
	}
}

// browserVisit is the same visit in headless Chromium: the login form
// filled in and submitted, the result page read from the DOM, the hashed
// script seen running, a screenshot kept.
func (tr *tour) browserVisit(t *testing.T, ctx context.Context, chromium string) {
	b := startBrowser(t, chromium)
	b.navigate(ctx, tr.base+"/app/hello") // bounced to the login page
	if got := b.eval(ctx, "location.pathname + location.search"); got != "/accounts/login/?next=/app/hello" {
		t.Fatalf("anonymous /app/hello ended on %s", got)
	}
	b.submit(ctx, fmt.Sprintf(`(() => { const f = document.getElementById("login");
		f.username.value = %q; f.password.value = %q; f.submit(); })()`, username, password))
	// Back on /app/hello, now greeted by the Go service.
	if got := b.eval(ctx, `document.getElementById("greeting") ? document.getElementById("greeting").textContent : document.body.innerText`); got != "Hello, "+username+"!" {
		t.Fatalf("after login, /app/hello shows %q", got)
	}

	b.navigate(ctx, tr.base+"/")
	if got := b.eval(ctx, `document.body.dataset.staticJs || "missing"`); got != "loaded" {
		t.Fatalf("the hashed app.js did not run: %s", got)
	}
	if got := b.eval(ctx, `getComputedStyle(document.body).fontFamily`); !strings.Contains(got, "system-ui") {
		t.Fatalf("the hashed stylesheet is not applied: font-family %q", got)
	}
	if got := b.eval(ctx, `String(document.querySelector("header img").naturalWidth)`); got == "0" {
		t.Fatal("the hashed logo.svg did not load")
	}
	b.submit(ctx, `(() => { const f = document.getElementById("enqueue");
		f.x.value = "19"; f.y.value = "23"; f.submit(); })()`)
	add := b.eval(ctx, `document.getElementById("add-value").textContent`)
	chain := b.eval(ctx, `document.getElementById("chain-value").textContent`)
	if add != "42" || chain != "420" {
		t.Fatalf("result page shows add=%q chain=%q, want 42 and 420:\n%s", add, chain, b.eval(ctx, "document.body.innerText"))
	}
	shot := filepath.Join(t.ArtifactDir(), "tour-result.png")
	b.screenshot(ctx, shot)
	t.Logf("screenshot of the result page: %s", shot)
}

// checkDBProxy asks the servers behind the tour's database address which
// of them answers: reads the replica, transactions the primary.
func (tr *tour) checkDBProxy(t *testing.T, ctx context.Context) {
	conn, err := pgx.Connect(ctx, tr.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var replica bool
	var users int
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM auth_user)").Scan(&replica, &users); err != nil {
		t.Fatal(err)
	}
	if !replica || users != 1 {
		t.Fatalf("a read through dbproxy: in recovery %v, %d users; want the replica, 1 user", replica, users)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := tx.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&replica); err != nil {
		t.Fatal(err)
	}
	if replica {
		t.Fatal("a transaction through dbproxy ran on the replica")
	}
}

var goTasksRE = regexp.MustCompile(`tasks="\[([^\]]*)\]"`)

// rollbackToPython is docs/migration.md's rollback: the Python tasks in
// tasks.py are the same names the Go worker runs, so a Celery worker
// started on the queue takes over when the Go worker stops, and the site
// works on unchanged.
func (tr *tour) rollbackToPython(t *testing.T, ctx context.Context) {
	out := run(t, ctx, tr.here, tr.env, tr.py, "manage.py", "shell", "-c",
		"from tour.celery import app; app.loader.import_default_modules(); "+
			"print(' '.join(sorted(n for n in app.tasks if n.startswith('tasks.'))))")
	pyNames := strings.Fields(out)
	log, _ := os.ReadFile(tr.worker.logPath)
	m := goTasksRE.FindSubmatch(log)
	if m == nil {
		t.Fatalf("no task list in the Go worker's log:\n%s", tail(string(log), 2000))
	}
	var goNames []string
	for _, n := range strings.Fields(string(m[1])) {
		if strings.HasPrefix(n, "tasks.") {
			goNames = append(goNames, n)
		}
	}
	if strings.Join(pyNames, " ") != strings.Join(goNames, " ") {
		t.Fatalf("tasks.py declares %v, the Go worker registers %v", pyNames, goNames)
	}

	celery := startProc(t, "celery", tr.here, tr.env, tr.py, "-m", "celery", "-A", "tour", "worker",
		"-Q", tr.queue, "-c", "1", "-P", "solo", "-n", "py-"+tr.queue+"@%h", "-l", "INFO",
		"--without-gossip", "--without-mingle", "--without-heartbeat")
	celery.waitReady(t, 60*time.Second, celery.logContains(" ready."))
	// Warm shutdown: the Go worker finishes what it runs, gives back what it
	// prefetched, and exits cleanly.
	tr.worker.stop(syscall.SIGTERM)
	if tr.worker.err != nil {
		out, _ := os.ReadFile(tr.worker.logPath)
		t.Fatalf("Go worker exit: %v\n%s", tr.worker.err, celeriacStacks(string(out)))
	}
	c := newClient(t)
	tr.login(t, ctx, c)
	_, ids := tr.enqueue(t, ctx, c, 5, 6)
	celery.waitReady(t, 10*time.Second, celery.logContains("Task tasks.add["+ids[0]+"] succeeded"))
}

// pythonCallers sends the Go worker's other tasks the way Python code
// would (Django's shell, Celery's own client) and checks what comes back:
// a dict bound to a Go struct, a task retried with backoff until a flaky
// server recovers, and a fenced credit sent twice with one task id.
func (tr *tour) pythonCallers(t *testing.T, ctx context.Context) {
	var hits atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer flaky.Close()
	script := fmt.Sprintf(`
import json, tasks
order = {"id": "A7", "discount_pct": 50, "lines": [{"sku": "tea", "qty": 3, "unit_cents": 400}]}
total = tasks.order_total.delay(order).get(timeout=20)
status = tasks.fetch_status.delay(%q).get(timeout=30)
first = tasks.credit.apply_async(("python", 5), task_id="credit-%[2]s").get(timeout=20)
again = tasks.credit.apply_async(("python", 5), task_id="credit-%[2]s").get(timeout=20)
print("RESULT " + json.dumps({"total": total, "status": status, "credits": [first, again]}, sort_keys=True))
`, flaky.URL, tr.queue)
	out := run(t, ctx, tr.here, tr.env, tr.py, "manage.py", "shell", "-c", script)
	_, got, ok := strings.Cut(out, "RESULT ")
	if !ok {
		t.Fatalf("no result from the Python caller:\n%s", out)
	}
	want := `{"credits": [5, 5], "status": 202, "total": {"id": "A7", "items": 3, "total_cents": 600}}`
	if strings.TrimSpace(got) != want {
		t.Fatalf("Python caller got %s\nwant %s", strings.TrimSpace(got), want)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("fetch_status made %d requests, want 3 (two 503s retried)", n)
	}
}

// celeriacStacks keeps a Go program's log lines and, of a goroutine dump,
// only the goroutines in celeriac's own code.
func celeriacStacks(log string) string {
	var keep []string
	for _, block := range strings.Split(log, "\n\n") {
		if !strings.HasPrefix(block, "goroutine ") || strings.Contains(block, "celeriac/celeriac/") {
			keep = append(keep, block)
		}
	}
	return strings.Join(keep, "\n\n")
}
