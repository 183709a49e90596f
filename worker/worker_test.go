package worker_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celeriac/celeriac/backend/memory"
	"github.com/celeriac/celeriac/broker"
	memtransport "github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/clock"
	"github.com/celeriac/celeriac/worker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(chaosWorkerEnv) != "" { // a worker process of TestChaosExactlyOnce
		os.Exit(chaosWorker())
	}
	goleak.VerifyTestMain(m)
}

// env is a worker on an in-memory broker and backend.
type env struct {
	t       *testing.T
	srv     *memtransport.Server
	client  *memtransport.Conn
	backend *memory.Backend
	prod    *broker.Producer
	w       *worker.Worker
	queue   string
	cfg     worker.Config
}

func newEnv(t *testing.T, mutate func(*worker.Config)) *env {
	t.Helper()
	srv := memtransport.NewServer()
	e := &env{t: t, srv: srv, client: srv.Connect(), backend: memory.New(), queue: "q_" + strings.ReplaceAll(t.Name(), "/", "_")}
	e.cfg = worker.Config{
		Broker: srv.Connect(), Backend: e.backend, Queues: []broker.Queue{broker.TaskQueue(e.queue)},
		Concurrency: 2, Hostname: "test@host", DefaultQueue: e.queue,
	}
	if mutate != nil {
		mutate(&e.cfg)
	}
	w, err := worker.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	if err := worker.RegisterBuiltins(w); err != nil {
		t.Fatal(err)
	}
	e.prod, err = broker.NewProducer(broker.ProducerConfig{Broker: e.client, Backend: e.backend, DefaultQueue: e.queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.w.Shutdown(ctx)
		_ = e.cfg.Broker.Close()
		_ = e.client.Close()
		srv.Shutdown()
	})
	return e
}

func (e *env) start() {
	e.t.Helper()
	if err := e.w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) send(name string, args []any, kwargs map[string]any, opts ...broker.SendOption) *broker.AsyncResult {
	e.t.Helper()
	r, err := e.prod.Send(context.Background(), name, args, kwargs, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) wait(r *broker.AsyncResult) *broker.ResultMeta {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Wait(ctx)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", r.ID, err)
	}
	return m
}

// queueSize polls the queue to a deadline until it holds want messages.
func (e *env) waitQueue(want int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := e.client.Inspect(context.Background(), e.queue)
		if err == nil && info.Messages == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("queue holds %d messages, want %d (err %v)", info.Messages, want, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSuccessAndFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	tests := []struct {
		name    string
		task    string
		args    []any
		kwargs  map[string]any
		want    any
		wantErr string
		excType string
	}{
		{"add ints", "celeriac.add", []any{2, 3}, nil, int64(5), "", ""},
		{"add floats", "celeriac.add", []any{2, 0.5}, nil, 2.5, "", ""},
		{"add kwargs", "celeriac.add", nil, map[string]any{"x": 1, "y": 2}, int64(3), "", ""},
		{"echo", "celeriac.echo", []any{"a"}, map[string]any{"k": true}, map[string]any{"args": []any{"a"}, "kwargs": map[string]any{"k": true}}, "", ""},
		{"noop", "celeriac.noop", nil, nil, nil, "", ""},
		{"fail", "celeriac.fail", []any{"boom"}, nil, nil, "boom", "TaskError"},
		{"wrong type", "celeriac.sleep", []any{"soon"}, nil, nil, "argument 0 (seconds)", "TypeError"},
		{"too many args", "celeriac.fail", []any{"a", "b"}, nil, nil, "takes 1 positional arguments but 2 were given", "TypeError"},
		{"unknown kwarg", "celeriac.add", nil, map[string]any{"x": 1, "z": 2}, nil, `unexpected keyword argument "z"`, "TypeError"},
		{"missing arg", "celeriac.add", []any{1}, nil, nil, "missing required argument 1 (y)", "TypeError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.wait(e.send(tc.task, tc.args, tc.kwargs))
			if tc.wantErr == "" {
				if m.Status != broker.StateSuccess {
					t.Fatalf("status %s: %v", m.Status, m.Result)
				}
				if got, _ := broker.MarshalJSON(m.Result); string(got) != mustJSON(t, tc.want) {
					t.Errorf("result %s, want %s", got, mustJSON(t, tc.want))
				}
				return
			}
			var te *broker.TaskError
			if err := m.Err(); !errors.As(err, &te) {
				t.Fatalf("status %s, err %v; want a failure", m.Status, err)
			}
			if te.Exception.Type != tc.excType || !strings.Contains(te.Exception.Text(), tc.wantErr) {
				t.Errorf("exception %s %q, want %s containing %q", te.Exception.Type, te.Exception.Text(), tc.excType, tc.wantErr)
			}
			if m.Traceback == nil || !strings.Contains(*m.Traceback, tc.excType) {
				t.Errorf("traceback %v", m.Traceback)
			}
		})
	}
	e.waitQueue(0)
}

func mustJSON(t *testing.T, v any) string {
	b, err := broker.MarshalJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnknownTaskAndMalformedMessages(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	m := e.wait(e.send("tasks.nope", nil, nil))
	exc, ok := m.Exception()
	if m.Status != broker.StateFailure || !ok || exc.Type != "NotRegistered" || exc.Text() != "tasks.nope" {
		t.Fatalf("unknown task: %s %+v", m.Status, m.Result)
	}
	// Pickle, garbage JSON and a body of the wrong shape are rejected and
	// the worker keeps going.
	bad := []*broker.Message{
		{Body: []byte("\x80\x04K\x01."), ContentType: broker.ContentPickle, Headers: map[string]any{"task": "celeriac.noop", "id": "p1"}},
		{Body: []byte("{not json"), ContentType: broker.ContentJSON, Headers: map[string]any{"task": "celeriac.noop", "id": "p2"}},
		{Body: []byte(`{"a": 1}`), ContentType: broker.ContentJSON, Headers: map[string]any{"task": "celeriac.noop", "id": "p3"}},
		{Body: []byte(`[[], null, {}]`), ContentType: broker.ContentJSON, Headers: map[string]any{"task": "celeriac.noop", "id": "p4"}},
	}
	for _, msg := range bad {
		if err := e.client.Publish(context.Background(), broker.Publishing{RoutingKey: e.queue, Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.wait(e.send("celeriac.add", []any{1, 1}, nil)); got.Status != broker.StateSuccess {
		t.Fatalf("worker stopped working after bad messages: %s", got.Status)
	}
	e.waitQueue(0)
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		if h := e.backend.History(id); len(h) != 0 {
			t.Errorf("%s: a malformed message stored states %v", id, h)
		}
	}
}

type addArgs struct {
	X     int    `json:"x"`
	Y     int    `json:"y" celery:"required"`
	Label string `json:"label"`
}

func TestStructBinding(t *testing.T) {
	e := newEnv(t, nil)
	e.w.MustRegister("tasks.sum", worker.Func(func(ctx context.Context, in addArgs) (string, error) {
		if worker.RequestFrom(ctx) == nil {
			return "", errors.New("no request in context")
		}
		return in.Label + ":" + string(rune('0'+in.X+in.Y)), nil
	}))
	e.start()
	tests := []struct {
		name    string
		args    []any
		kwargs  map[string]any
		want    string
		wantErr string
	}{
		{"positional", []any{1, 2, "p"}, nil, "p:3", ""},
		{"kwargs", nil, map[string]any{"x": 2, "y": 2, "label": "k"}, "k:4", ""},
		{"mixed", []any{3}, map[string]any{"y": 1}, ":4", ""},
		{"dict argument", []any{map[string]any{"x": 1, "y": 1, "extra": "ignored"}}, nil, ":2", ""},
		{"required missing", nil, map[string]any{"x": 1}, "", `missing required argument "y"`},
		{"duplicate", []any{1}, map[string]any{"x": 1, "y": 1}, "", `multiple values for argument "x"`},
		{"bad field type", nil, map[string]any{"x": "one", "y": 1}, "", "argument x: expected int"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.wait(e.send("tasks.sum", tc.args, tc.kwargs))
			if tc.wantErr != "" {
				if m.Status != broker.StateFailure || !strings.Contains(m.Err().Error(), tc.wantErr) {
					t.Fatalf("%s %v, want failure %q", m.Status, m.Err(), tc.wantErr)
				}
				return
			}
			if m.Status != broker.StateSuccess || m.Result != tc.want {
				t.Fatalf("%s %v, want %q", m.Status, m.Result, tc.want)
			}
		})
	}
}

func TestPanicBecomesFailure(t *testing.T) {
	e := newEnv(t, nil)
	e.w.MustRegister("tasks.panic", worker.Func(func() { panic("kaboom") }))
	e.start()
	m := e.wait(e.send("tasks.panic", nil, nil))
	exc, _ := m.Exception()
	if m.Status != broker.StateFailure || exc.Type != "TaskPanic" || !strings.Contains(*m.Traceback, "Go stack") {
		t.Fatalf("%s %+v", m.Status, m.Result)
	}
}

func TestPythonException(t *testing.T) {
	e := newEnv(t, nil)
	e.w.MustRegister("tasks.bad", worker.Func(func() error { return worker.Exception("builtins", "ValueError", "bad value", 42) }))
	e.start()
	m := e.wait(e.send("tasks.bad", nil, nil))
	exc, _ := m.Exception()
	if exc.Type != "ValueError" || exc.Module != "builtins" || len(exc.Message) != 2 {
		t.Fatalf("%+v", exc)
	}
}

func TestExpiredIsRevoked(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	m := e.wait(e.send("celeriac.noop", nil, nil, broker.WithExpiresAt(time.Now().Add(-time.Second))))
	exc, _ := m.Exception()
	if m.Status != broker.StateRevoked || exc.Type != "TaskRevokedError" || exc.Text() != "expired" {
		t.Fatalf("%s %+v", m.Status, m.Result)
	}
	e.waitQueue(0)
}

func TestETAHeldUntilDue(t *testing.T) {
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fake := clock.NewFake(start)
	// Inside the hold horizon the task is held in memory.
	e := newEnv(t, func(c *worker.Config) { c.Clock = fake; c.ETAHoldHorizon = 2 * time.Hour })
	var ran atomic.Int64
	e.w.MustRegister("tasks.mark", worker.Func(func() { ran.Add(1) }))
	e.start()
	r := e.send("tasks.mark", nil, nil, broker.WithETA(start.Add(time.Hour)))
	now := e.send("celeriac.noop", nil, nil)
	e.wait(now) // the held task does not block others
	waitFor(t, func() bool { return fake.Pending() > 0 })
	if ran.Load() != 0 {
		t.Fatal("ETA task ran before its time")
	}
	fake.Advance(59 * time.Minute)
	if ran.Load() != 0 {
		t.Fatal("ETA task ran a minute early")
	}
	fake.Advance(time.Minute)
	if m := e.wait(r); m.Status != broker.StateSuccess || ran.Load() != 1 {
		t.Fatalf("%s ran=%d", m.Status, ran.Load())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRetry(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(c *worker.Config) { c.Clock = fake })
	var calls atomic.Int64
	e.w.MustRegister("tasks.flaky", worker.Func(func(ctx context.Context) (string, error) {
		n := calls.Add(1)
		if r := worker.RequestFrom(ctx); int64(r.Retries) != n-1 {
			return "", errors.New("retries header not counted")
		}
		if n < 3 {
			return "", worker.Retry(errors.New("not yet"), worker.Countdown(10*time.Second))
		}
		return "done", nil
	}))
	e.w.MustRegister("tasks.hopeless", worker.Func(func() error {
		return worker.Retry(worker.Exception("builtins", "KeyError", "k"), worker.Countdown(time.Second))
	}), worker.MaxRetries(1))
	e.start()
	r := e.send("tasks.flaky", nil, nil)
	for range 2 {
		waitFor(t, func() bool { return fake.Pending() > 0 })
		fake.Advance(10 * time.Second)
	}
	if m := e.wait(r); m.Status != broker.StateSuccess || m.Result != "done" {
		t.Fatalf("%s %v", m.Status, m.Result)
	}
	if h := e.backend.History(r.ID); len(h) != 3 || h[0] != broker.StateRetry || h[1] != broker.StateRetry {
		t.Errorf("states %v, want RETRY RETRY SUCCESS", h)
	}
	r = e.send("tasks.hopeless", nil, nil)
	waitFor(t, func() bool { return fake.Pending() > 0 })
	fake.Advance(time.Second)
	m := e.wait(r)
	exc, _ := m.Exception()
	if m.Status != broker.StateFailure || exc.Type != "KeyError" {
		t.Fatalf("after max retries: %s %+v", m.Status, m.Result)
	}
}

func TestConcurrencyBound(t *testing.T) {
	e := newEnv(t, func(c *worker.Config) { c.Concurrency = 3 })
	var running, peak atomic.Int64
	release := make(chan struct{})
	e.w.MustRegister("tasks.block", worker.Func(func() {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
	}))
	e.start()
	var rs []*broker.AsyncResult
	for range 10 {
		rs = append(rs, e.send("tasks.block", nil, nil))
	}
	waitFor(t, func() bool { return running.Load() == 3 })
	close(release)
	for _, r := range rs {
		e.wait(r)
	}
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency %d, want 3", peak.Load())
	}
}

func TestShutdownFinishesRunningAndReturnsTheRest(t *testing.T) {
	e := newEnv(t, func(c *worker.Config) { c.Concurrency = 2 })
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	e.w.MustRegister("tasks.block", worker.Func(func() {
		started <- struct{}{}
		<-release
	}))
	e.start()
	for range 6 {
		e.send("tasks.block", nil, nil)
	}
	<-started
	<-started
	// All six received: two running, four reserved. (Without this wait a
	// loaded machine may deliver some only after Shutdown began.)
	e.waitQueue(0)
	done := make(chan error)
	go func() { done <- e.w.Shutdown(context.Background()) }()
	// The four prefetched tasks go back at once; the two running finish.
	e.waitQueue(4)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.waitQueue(4)
	if e.w.Processed() != 2 {
		t.Fatalf("processed %d, want 2", e.w.Processed())
	}
	if err := e.w.Shutdown(context.Background()); !errors.Is(err, worker.ErrWorkerClosed) {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownDeadlineCancelsTasks(t *testing.T) {
	e := newEnv(t, nil)
	started := make(chan struct{})
	e.w.MustRegister("tasks.wait", worker.Func(func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return context.Cause(ctx)
	}))
	e.start()
	e.send("tasks.wait", nil, nil)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.w.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
}

func TestCrashRedelivers(t *testing.T) {
	// A worker whose connection dies mid-task leaves the message unacked;
	// the next worker gets it again (late ack is the default).
	e := newEnv(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	e.w.MustRegister("tasks.slow", worker.Func(func(ctx context.Context) { close(started); <-release }))
	e.start()
	r := e.send("tasks.slow", nil, nil)
	<-started
	_ = e.cfg.Broker.Close() // the "crash": the connection is gone
	w2, err := worker.New(worker.Config{Broker: e.srv.Connect(), Backend: e.backend, Queues: e.cfg.Queues})
	if err != nil {
		t.Fatal(err)
	}
	var redelivered atomic.Bool
	w2.MustRegister("tasks.slow", worker.Func(func(ctx context.Context) { redelivered.Store(worker.RequestFrom(ctx).Redelivered) }))
	if err := w2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w2.Shutdown(context.Background())
	if m := e.wait(r); m.Status != broker.StateSuccess || !redelivered.Load() {
		t.Fatalf("%s redelivered=%v", m.Status, redelivered.Load())
	}
}

func TestTimeLimits(t *testing.T) {
	e := newEnv(t, nil)
	e.w.MustRegister("tasks.soft", worker.Func(func(ctx context.Context) error {
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), worker.ErrSoftTimeLimit) {
			return errors.New("soft limit not distinguishable")
		}
		return ctx.Err()
	}), worker.TimeLimits(50*time.Millisecond, 0))
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	e.w.MustRegister("tasks.stuck", worker.Func(func() { <-stuck }))
	e.start()
	m := e.wait(e.send("tasks.soft", nil, nil))
	if exc, _ := m.Exception(); m.Status != broker.StateFailure || exc.Type != "SoftTimeLimitExceeded" {
		t.Fatalf("soft: %s %+v", m.Status, m.Result)
	}
	m = e.wait(e.send("tasks.stuck", nil, nil, broker.WithTimeLimit(100*time.Millisecond, 0)))
	if exc, _ := m.Exception(); m.Status != broker.StateFailure || exc.Type != "TimeLimitExceeded" || exc.Module != "billiard.exceptions" {
		t.Fatalf("hard: %s %+v", m.Status, m.Result)
	}
	// The slot was freed: other work still runs.
	if m := e.wait(e.send("celeriac.noop", nil, nil)); m.Status != broker.StateSuccess {
		t.Fatal(m.Status)
	}
	e.waitQueue(0)
}

func TestChainAndLink(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	final := "final-id"
	mul := broker.NewSignature("celeriac.add", 10)
	mul.Options["task_id"] = final
	r := e.send("celeriac.add", []any{1, 2}, nil, broker.WithTask(&broker.Task{Chain: []broker.Signature{*mul}}))
	first := e.wait(r)
	if first.Status != broker.StateSuccess || len(first.Children) != 1 {
		t.Fatalf("first: %s children=%v", first.Status, first.Children)
	}
	m := e.wait(broker.NewAsyncResult(final, e.backend))
	if m.Result != int64(13) {
		t.Fatalf("chain result %v, want 13", m.Result)
	}
}

func TestIgnoreResultAndEarlyAck(t *testing.T) {
	e := newEnv(t, nil)
	acked := make(chan bool, 1)
	e.w.MustRegister("tasks.quiet", worker.Func(func() string { return "x" }), worker.IgnoreResult())
	e.w.MustRegister("tasks.early", worker.Func(func(ctx context.Context) {
		// With early ack the message is gone from the broker already.
		info, _ := e.client.Inspect(ctx, e.queue)
		acked <- info.Messages == 0
	}), worker.AckEarly())
	e.start()
	r := e.send("tasks.quiet", nil, nil)
	e.wait(e.send("celeriac.noop", nil, nil))
	waitFor(t, func() bool { return e.w.Processed() == 2 })
	if h := e.backend.History(r.ID); len(h) != 0 {
		t.Fatalf("ignored result stored: %v", h)
	}
	e.send("tasks.early", nil, nil)
	if !<-acked {
		t.Fatal("message not acked before running")
	}
}

func TestConfigValidation(t *testing.T) {
	srv := memtransport.NewServer()
	defer srv.Shutdown()
	c := srv.Connect()
	defer c.Close()
	tests := []struct {
		name string
		cfg  worker.Config
		want string
	}{
		{"no broker", worker.Config{}, "Config.Broker"},
		{"negative concurrency", worker.Config{Broker: c, Concurrency: -1}, "Config.Concurrency"},
		{"bad serializer", worker.Config{Broker: c, Serializer: "pickle"}, "Config.Serializer"},
		{"bad hostname", worker.Config{Broker: c, Hostname: "w@%q"}, "Config.Hostname"},
		{"unnamed queue", worker.Config{Broker: c, Queues: []broker.Queue{{}}}, "Config.Queues[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := worker.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	w, _ := worker.New(worker.Config{Broker: c})
	if !strings.HasPrefix(w.Hostname(), "celeriac@") {
		t.Errorf("default hostname %q", w.Hostname())
	}
	if err := w.Register("x", worker.Func(func() {})); err != nil {
		t.Fatal(err)
	}
	if err := w.Register("x", worker.Func(func() {})); err == nil {
		t.Error("duplicate registration accepted")
	}
}
