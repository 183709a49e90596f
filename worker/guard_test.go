package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbackend "github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/lock"
	"github.com/celeriac/celeriac/worker"
)

// guardedEnv is an env whose worker runs the exactly-once guard on the
// shared test Redis, under its own key prefix.
func guardedEnv(t *testing.T, mutate func(*worker.Config)) (*env, *lock.Locker, goredis.UniversalClient, string) {
	t.Helper()
	opt, err := goredis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	prefix := testenv.Prefix(t) + ":"
	lk, err := lock.New(lock.Config{Clients: []goredis.UniversalClient{rdb}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *worker.Config) {
		c.Locker = lk
		c.GuardLease = 2 * time.Second
		if mutate != nil {
			mutate(c)
		}
	})
	return e, lk, rdb, prefix
}

func TestGuardRunsDuplicatesOnce(t *testing.T) {
	e, _, _, _ := guardedEnv(t, nil)
	var runs atomic.Int64
	e.w.MustRegister("tasks.count", worker.Func(func() { runs.Add(1) }))
	e.w.MustRegister("tasks.quiet", worker.Func(func() { runs.Add(100) }), worker.IgnoreResult())
	e.start()
	for range 3 {
		e.send("tasks.count", nil, nil, broker.WithTaskID("dup-1"))
	}
	e.wait(broker.NewAsyncResult("dup-1", e.backend))
	// Results ignored: the done mark alone stops the copies.
	for range 3 {
		e.send("tasks.quiet", nil, nil, broker.WithTaskID("dup-2"))
	}
	waitFor(t, func() bool {
		info, _ := e.client.Inspect(context.Background(), e.queue)
		return info.Messages == 0 && runs.Load() >= 101
	})
	e.wait(e.send("celeriac.noop", nil, nil)) // everything before it was handled
	waitFor(t, func() bool { return e.w.Processed() >= 3 })
	if runs.Load() != 101 {
		t.Fatalf("runs = %d, want 101 (each id once)", runs.Load())
	}
}

func TestGuardHonoursResultsWrittenElsewhere(t *testing.T) {
	e, _, _, _ := guardedEnv(t, nil)
	var runs atomic.Int64
	e.w.MustRegister("tasks.count", worker.Func(func() { runs.Add(1) }))
	e.start()
	// A Python worker already finished this id.
	if err := e.backend.Store(context.Background(), &broker.ResultMeta{TaskID: "py-done", Status: broker.StateSuccess, Result: "from python"}); err != nil {
		t.Fatal(err)
	}
	e.send("tasks.count", nil, nil, broker.WithTaskID("py-done"))
	e.wait(e.send("celeriac.noop", nil, nil))
	e.waitQueue(0)
	if runs.Load() != 0 {
		t.Fatal("a task finished elsewhere ran again")
	}
}

// TestGuardReadsStateWithTheLease: with the result backend on the guard's
// own Redis, the stored state is read by the lease's acquisition script
// (no separate backend read); a state written elsewhere still stops the
// copy, and a new id still runs.
func TestGuardReadsStateWithTheLease(t *testing.T) {
	ctx := context.Background()
	rb, err := redisbackend.New(ctx, redisbackend.Config{URL: testenv.RedisURL(t), Expires: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rb.Close() })
	e, lk, rdb, prefix := guardedEnv(t, func(c *worker.Config) { c.Backend = rb })
	if !lk.SameServer(rb.Client()) {
		t.Fatal("the backend and the locker should share a server")
	}
	var runs atomic.Int64
	e.w.MustRegister("tasks.count", worker.Func(func() { runs.Add(1) }))
	e.start()
	done, fresh := testenv.Prefix(t)+"-done", testenv.Prefix(t)+"-fresh"
	if err := rb.Store(ctx, &broker.ResultMeta{TaskID: done, Status: broker.StateSuccess, Result: "from python"}); err != nil {
		t.Fatal(err)
	}
	e.send("tasks.count", nil, nil, broker.WithTaskID(done))
	e.send("tasks.count", nil, nil, broker.WithTaskID(fresh))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if m, err := rb.Wait(wctx, fresh); err != nil || m.Status != broker.StateSuccess {
		t.Fatalf("fresh id: %v %v", m, err)
	}
	waitFor(t, func() bool {
		_, body := get(t, e.w.HTTPHandler(), "/metrics")
		return strings.Contains(body, `celeriac_guard_total{hostname="test@host",outcome="duplicate"} 1`)
	})
	if runs.Load() != 1 {
		t.Fatalf("runs = %d, want 1 (the finished id must not run)", runs.Load())
	}
	if m, _ := rb.Get(ctx, done); m.Result != "from python" {
		t.Fatalf("the stored result was replaced: %v", m.Result)
	}
	// The fresh id's result, done mark and release were one script.
	lockKey := prefix + "{task:" + fresh + "}"
	waitFor(t, func() bool { return rdb.Exists(ctx, lockKey).Val() == 0 })
	if v := rdb.Get(ctx, lockKey+":done").Val(); v != "SUCCESS" {
		t.Fatalf("done mark = %q, want SUCCESS", v)
	}
}

func TestGuardConcurrentCopiesAndFencing(t *testing.T) {
	e, _, _, _ := guardedEnv(t, func(c *worker.Config) { c.Concurrency = 4 })
	var running, peak, runs atomic.Int64
	release := make(chan struct{})
	var token atomic.Uint64
	e.w.MustRegister("tasks.slow", worker.Func(func(ctx context.Context) {
		n := running.Add(1)
		defer running.Add(-1)
		if n > peak.Load() {
			peak.Store(n)
		}
		runs.Add(1)
		token.Store(worker.RequestFrom(ctx).FencingToken)
		<-release
	}))
	e.start()
	r := e.send("tasks.slow", nil, nil, broker.WithTaskID("same"))
	e.send("tasks.slow", nil, nil, broker.WithTaskID("same"))
	waitFor(t, func() bool { return runs.Load() == 1 })
	// The second copy finds the lease held and is parked, not run. Wait
	// for that before releasing the first: on a loaded machine the copy
	// may still be on its way to the guard.
	waitFor(t, func() bool {
		_, body := get(t, e.w.HTTPHandler(), "/metrics")
		return strings.Contains(body, `celeriac_guard_total{hostname="test@host",outcome="busy"} 1`)
	})
	e.waitQueue(0)
	close(release)
	if m := e.wait(r); m.Status != broker.StateSuccess {
		t.Fatal(m.Status)
	}
	if token.Load() == 0 {
		t.Error("no fencing token in the request")
	}
	// The parked copy comes back, finds the task done, and is dropped.
	waitFor(t, func() bool { return e.w.Processed() == 1 && runs.Load() == 1 })
	_, body := get(t, e.w.HTTPHandler(), "/metrics")
	deadline := time.Now().Add(10 * time.Second)
	for !containsAll(body, `celeriac_guard_total{hostname="test@host",outcome="busy"} 1`, `outcome="duplicate"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("guard metrics:\n%s", grep(body, "celeriac_guard"))
		}
		time.Sleep(50 * time.Millisecond)
		_, body = get(t, e.w.HTTPHandler(), "/metrics")
	}
	if peak.Load() != 1 || runs.Load() != 1 {
		t.Fatalf("peak %d runs %d", peak.Load(), runs.Load())
	}
}

func TestGuardLeaseLostCancelsAndRequeues(t *testing.T) {
	e, _, rdb, prefix := guardedEnv(t, nil)
	var runs atomic.Int64
	started := make(chan struct{}, 2)
	var firstErr atomic.Value
	e.w.MustRegister("tasks.victim", worker.Func(func(ctx context.Context) error {
		if runs.Add(1) == 1 {
			started <- struct{}{}
			<-ctx.Done()
			firstErr.Store(context.Cause(ctx))
			return ctx.Err()
		}
		return nil
	}))
	e.start()
	r := e.send("tasks.victim", nil, nil, broker.WithTaskID("victim"))
	<-started
	// Someone deletes the lease (a Redis failover without persistence
	// would): the renewal notices, the task is cancelled and requeued.
	if err := rdb.Del(context.Background(), prefix+"{task:victim}").Err(); err != nil {
		t.Fatal(err)
	}
	if m := e.wait(r); m.Status != broker.StateSuccess || runs.Load() != 2 {
		t.Fatalf("%s after %d runs", m.Status, runs.Load())
	}
	if err, _ := firstErr.Load().(error); !errors.Is(err, lock.ErrLost) {
		t.Errorf("first run cancelled with %v, want lock.ErrLost", err)
	}
	if h := e.backend.History("victim"); len(h) != 1 {
		t.Errorf("states stored %v: the lost run must store nothing", h)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func grep(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
