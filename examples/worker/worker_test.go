package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/backend/memory"
	"github.com/celeriac/celeriac/broker"
	memtransport "github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/lock"
	"github.com/celeriac/celeriac/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness runs the example's tasks on an in-memory broker and backend, with
// the guard and the ledger on the test Redis under the test's own prefix.
type harness struct {
	t      *testing.T
	w      *worker.Worker
	prod   *broker.Producer
	ledger *Ledger
	rdb    *goredis.Client
	prefix string
}

func newHarness(t *testing.T, d Deps) *harness {
	t.Helper()
	opt, err := goredis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	prefix := testenv.Prefix(t) + ":"
	t.Cleanup(func() {
		// The guard's and the ledger's keys, all under the test's prefix.
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	lk, err := lock.New(lock.Config{Clients: []goredis.UniversalClient{rdb}, Prefix: prefix + "lock:"})
	if err != nil {
		t.Fatal(err)
	}
	srv := memtransport.NewServer()
	backend := memory.New()
	w, err := worker.New(worker.Config{Broker: srv.Connect(), Backend: backend, Concurrency: 2,
		Hostname: "example@test", Locker: lk, GuardLease: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, w: w, rdb: rdb, prefix: prefix, ledger: NewLedger(rdb, prefix+"ledger:")}
	d.Ledger = h.ledger
	if err := Register(w, d); err != nil {
		t.Fatal(err)
	}
	client := srv.Connect()
	if h.prod, err = broker.NewProducer(broker.ProducerConfig{Broker: client, Backend: backend}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		client.Close()
		srv.Shutdown()
	})
	return h
}

// call sends a task as Python's apply_async would and waits for its outcome.
func (h *harness) call(name string, args []any, kwargs map[string]any, opts ...broker.SendOption) (any, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := h.prod.Send(ctx, name, args, kwargs, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Get(ctx)
}

// waitMetric polls the worker's /metrics until it shows line.
func (h *harness) waitMetric(line string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.w.HTTPHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if strings.Contains(rec.Body.String(), line) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("metrics never showed %s", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTasks(t *testing.T) {
	h := newHarness(t, Deps{})
	tests := []struct {
		name    string
		task    string
		args    []any
		kwargs  map[string]any
		want    any
		wantErr string // a substring of the stored failure
	}{
		{name: "add/positional", task: "tasks.add", args: []any{2, 3}, want: int64(5)},
		{name: "add/keywords", task: "tasks.add", kwargs: map[string]any{"x": 4, "y": 5}, want: int64(9)},
		{name: "add/json float", task: "tasks.add", args: []any{2.0, 3.0}, want: int64(5)},
		{name: "add/wrong type", task: "tasks.add", args: []any{"2", 3}, wantErr: "argument 0 (x)"},
		{name: "add/too many", task: "tasks.add", args: []any{1, 2, 3}, wantErr: "positional"},
		{name: "mul", task: "tasks.mul", args: []any{6, 7}, want: int64(42)},
		{name: "order/dict", task: "tasks.order_total", args: []any{map[string]any{
			"id": "A1", "discount_pct": 10,
			"lines": []any{
				map[string]any{"sku": "tea", "qty": 2, "unit_cents": 350},
				map[string]any{"sku": "cake", "qty": 1, "unit_cents": 300},
			},
		}}, want: map[string]any{"id": "A1", "items": int64(3), "total_cents": int64(900)}},
		{name: "order/keywords", task: "tasks.order_total", kwargs: map[string]any{
			"id": "A2", "lines": []any{map[string]any{"sku": "tea", "qty": 1, "unit_cents": 350}},
		}, want: map[string]any{"id": "A2", "items": int64(1), "total_cents": int64(350)}},
		{name: "order/missing id", task: "tasks.order_total", kwargs: map[string]any{"lines": []any{}}, wantErr: `"id"`},
		{name: "order/bad line", task: "tasks.order_total", args: []any{map[string]any{
			"id": "A3", "lines": []any{map[string]any{"sku": "tea", "qty": 0, "unit_cents": 350}},
		}}, wantErr: "line 0 (tea) has qty 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.call(tc.task, tc.args, tc.kwargs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSONish(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// equalJSONish compares results after the backend's JSON round trip, where
// every integer may come back as int64 or float64.
func equalJSONish(got, want any) bool {
	switch w := want.(type) {
	case int64:
		switch g := got.(type) {
		case int64:
			return g == w
		case float64:
			return g == float64(w)
		case int:
			return int64(g) == w
		}
		return false
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if !equalJSONish(g[k], v) {
				return false
			}
		}
		return true
	}
	return got == want
}

func TestChain(t *testing.T) {
	h := newHarness(t, Deps{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// (add.s(2, 3) | mul.s(10)).delay(): mul receives add's result first.
	r, err := h.prod.Chain(ctx, broker.NewSignature("tasks.add", 2, 3), broker.NewSignature("tasks.mul", 10))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSONish(got, int64(50)) {
		t.Fatalf("chain = %v, want 50", got)
	}
}

// flaky answers 503 to its first n requests, then 200.
func flaky(t *testing.T, n int64) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			hits.Add(1)
			http.NotFound(w, r)
			return
		}
		if hits.Add(1) <= n {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func TestFetchStatusRetries(t *testing.T) {
	tests := []struct {
		name     string
		failures int64
		path     string
		want     int64
		wantHits int64
		wantErr  string
	}{
		{name: "recovers after two 503s", failures: 2, want: 200, wantHits: 3},
		{name: "404 is an answer, not retried", path: "/missing", want: 404, wantHits: 1},
		// max_retries=5: six attempts, then the last error is the failure.
		{name: "gives up after five retries", failures: 100, wantHits: 6, wantErr: "503"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, hits := flaky(t, tc.failures)
			h := newHarness(t, Deps{Backoff: 10 * time.Millisecond})
			got, err := h.call("tasks.fetch_status", []any{srv.URL + tc.path}, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil || !equalJSONish(got, tc.want) {
				t.Fatalf("got %v, %v; want %d", got, err, tc.want)
			}
			if hits.Load() != tc.wantHits {
				t.Fatalf("%d requests, want %d", hits.Load(), tc.wantHits)
			}
		})
	}
}

func TestCreditFencing(t *testing.T) {
	h := newHarness(t, Deps{})
	ctx := context.Background()
	balance := func() int64 {
		t.Helper()
		n, err := h.ledger.Balance(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("credits", func(t *testing.T) {
		for i, want := range []int64{10, 15} {
			got, err := h.call("tasks.credit", []any{"alice", []int{10, 5}[i]}, nil)
			if err != nil || !equalJSONish(got, want) {
				t.Fatalf("credit %d: %v, %v; want %d", i, got, err, want)
			}
		}
	})
	t.Run("duplicate delivery runs once", func(t *testing.T) {
		before := balance()
		for range 2 {
			if _, err := h.call("tasks.credit", nil, map[string]any{"account": "alice", "amount": 7}, broker.WithTaskID("dup-credit")); err != nil {
				t.Fatal(err)
			}
		}
		// The second copy is dropped by the guard, after the first's
		// result is already readable: wait for the guard to say so.
		h.waitMetric(`celeriac_guard_total{hostname="example@test",outcome="duplicate"} 1`)
		if got := balance(); got != before+7 {
			t.Fatalf("balance %d, want %d", got, before+7)
		}
	})
	t.Run("re-run after a crash credits nothing", func(t *testing.T) {
		// A run that credited and then crashed before storing SUCCESS left
		// its entry (token 1) behind; the next run holds a newer token.
		before := balance()
		if err := h.rdb.HSet(ctx, h.prefix+"ledger:entry:crashed", "fence", 1, "amount", 3).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := h.call("tasks.credit", []any{"alice", 3}, nil, broker.WithTaskID("crashed")); err != nil {
			t.Fatal(err)
		}
		if got := balance(); got != before {
			t.Fatalf("balance %d, want %d (credited twice)", got, before)
		}
	})
	t.Run("stale holder refused", func(t *testing.T) {
		// A newer holder has written with a token far above any this run
		// can get: this run is the stale one.
		before := balance()
		if err := h.rdb.HSet(ctx, h.prefix+"ledger:entry:stale", "fence", int64(1)<<50, "amount", 4).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := h.call("tasks.credit", []any{"alice", 4}, nil, broker.WithTaskID("stale"))
		if err == nil || !strings.Contains(err.Error(), "stale fencing token") {
			t.Fatalf("err = %v, want the stale token refused", err)
		}
		if got := balance(); got != before {
			t.Fatalf("balance %d, want %d", got, before)
		}
	})
	t.Run("bad amount", func(t *testing.T) {
		_, err := h.call("tasks.credit", []any{"alice", -1}, nil)
		if err == nil || !strings.Contains(err.Error(), "must be positive") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRun drives the program itself: flags, URLs, start and warm shutdown.
func TestRun(t *testing.T) {
	name := strings.ReplaceAll(testenv.Prefix(t), ":", "-")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-broker", "memory://" + name, "-result-backend", "memory://" + name, "-Q", "example", "-c", "1"}, &stderr)
	}()
	conn := memtransport.NamedServer(name).Connect()
	defer conn.Close()
	prod, err := broker.NewProducer(broker.ProducerConfig{Broker: conn, Backend: memory.Named(name), DefaultQueue: "example"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	r, err := prod.Send(wctx, "tasks.add", []any{20, 22}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(wctx)
	if err != nil || !equalJSONish(got, int64(42)) {
		t.Fatalf("tasks.add = %v, %v", got, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	// A bad URL is an error naming it, not a hang.
	err = run(context.Background(), []string{"-broker", "nosuch://x"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("run with a bad broker URL: %v", err)
	}
}

// syncBuffer captures output written concurrently.
type syncBuffer = testenv.Buffer
