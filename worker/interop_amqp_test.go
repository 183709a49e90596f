package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	redisbackend "github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	_ "github.com/celeriac/celeriac/broker/amqp"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// amqpEnv is a Go worker and a Python Celery app sharing one RabbitMQ
// queue, with results in Redis.
type amqpEnv struct {
	t        *testing.T
	queue    string
	amqpURL  string
	redisURL string
	broker   broker.Broker
	backend  broker.ResultBackend
	logs     *syncBuf
	w        *worker.Worker
}

// syncBuf captures output written concurrently.
type syncBuf = testenv.Buffer

func newAMQPEnv(t *testing.T) *amqpEnv {
	t.Helper()
	e := &amqpEnv{t: t, queue: testenv.Prefix(t), amqpURL: testenv.AMQPURL(t), redisURL: testenv.RedisURL(t), logs: &syncBuf{}}
	testenv.Python(t, "celery", "redis", "msgpack")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Open(ctx, e.amqpURL, broker.Options{Name: "celeriac-interop-" + e.queue})
	if err != nil {
		t.Fatal(err)
	}
	e.broker = b
	be, err := redisbackend.Open(ctx, e.redisURL, broker.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.backend = be
	t.Cleanup(func() {
		if e.w != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_ = e.w.Shutdown(sctx)
			cancel()
		}
		_ = b.Close()
		if c, ok := be.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		deleteQueue(t, e.amqpURL, e.queue)
	})
	return e
}

// deleteQueue removes the test's queue and exchange from the shared broker.
func deleteQueue(t *testing.T, url, name string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(name, false, false, false)
		_ = ch.ExchangeDelete(name, false, false)
		_ = ch.Close()
	}
}

// startWorker starts a Go worker on the queue with the builtins and the
// extra handlers.
func (e *amqpEnv) startWorker(extra map[string]worker.Handler, mutate ...func(*worker.Config)) {
	e.t.Helper()
	cfg := worker.Config{
		Broker: e.broker, Backend: e.backend, Queues: []broker.Queue{broker.TaskQueue(e.queue)},
		Concurrency: 2, Hostname: "go-" + e.queue + "@%h", DefaultQueue: e.queue,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range mutate {
		f(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		e.t.Fatal(err)
	}
	for name, h := range extra {
		if err := w.Register(name, h); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.w = w
}

func (e *amqpEnv) python(serializer string, protocol int) *celerytest.App {
	return celerytest.New(e.t, celerytest.Config{Broker: e.amqpURL, Backend: e.redisURL, Queue: e.queue,
		Serializer: serializer, Protocol: protocol, CounterURL: e.redisURL, CounterHash: e.queue})
}

// TestAMQPPythonToGo: Python send_task and delay reach the Go worker over
// RabbitMQ; AsyncResult.get() returns the Go result or raises its error.
func TestAMQPPythonToGo(t *testing.T) {
	for _, tc := range []struct {
		serializer string
		protocol   int
	}{{"json", 2}, {"msgpack", 2}, {"json", 1}} {
		t.Run(fmt.Sprintf("%s_v%d", tc.serializer, tc.protocol), func(t *testing.T) {
			t.Parallel()
			e := newAMQPEnv(t)
			e.startWorker(map[string]worker.Handler{
				"tasks.py_add": worker.Func(func(x, y int) int { return x + y }),
			})
			py := e.python(tc.serializer, tc.protocol)
			out := py.Send("celeriac.add", []any{2, 3}, nil, nil)
			if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result != 5.0 {
				t.Fatalf("send_task celeriac.add: %+v\n%s", out, e.logs)
			}
			// add.delay(2, 3) of a task the Python app defines.
			out = py.Send("tasks.py_add", []any{2, 3}, nil, map[string]any{"via": "delay"})
			if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result != 5.0 {
				t.Fatalf("py_add.delay: %+v", out)
			}
			out = py.Send("celeriac.echo", []any{"a", 1.5, nil}, map[string]any{"k": []any{true}}, nil)
			want := map[string]any{"args": []any{"a", 1.5, nil}, "kwargs": map[string]any{"k": []any{true}}}
			if len(out) != 1 || fmt.Sprint(out[0].Result) != fmt.Sprint(want) {
				t.Fatalf("echo: %+v", out)
			}
			out = py.Send("celeriac.fail", []any{"disk on fire"}, nil, nil)
			if len(out) != 1 || out[0].State != "FAILURE" || !strings.Contains(out[0].ExcMessage, "disk on fire") {
				t.Fatalf("a Go error must raise in Python with its message: %+v", out)
			}
		})
	}
}

// TestAMQPGoToPython: the Go producer sends a task a Python Celery worker
// runs, and Go reads its result from Redis.
func TestAMQPGoToPython(t *testing.T) {
	t.Parallel()
	e := newAMQPEnv(t)
	py := e.python("json", 2)
	pw := py.StartWorker()
	prod, err := broker.NewProducer(broker.ProducerConfig{Broker: e.broker, Backend: e.backend, DefaultQueue: e.queue})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ser := range []string{broker.SerializerJSON, broker.SerializerMsgpack} {
		r, err := prod.Send(ctx, "tasks.py_add", []any{2, 3}, nil, broker.WithSerializer(ser))
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Get(ctx)
		if err != nil || fmt.Sprint(v) != "5" {
			t.Fatalf("%s: py_add = %v, %v\n%s", ser, v, err, pw.Logs())
		}
	}
	r, err := prod.Send(ctx, "tasks.py_fail", []any{"from python"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx); err == nil || !strings.Contains(err.Error(), "from python") {
		t.Fatalf("py_fail: %v", err)
	}
}

// TestAMQPSharedQueue: a Python and a Go worker consume one queue at once;
// every task runs exactly once and both take part.
func TestAMQPSharedQueue(t *testing.T) {
	t.Parallel()
	e := newAMQPEnv(t)
	opt, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Cleanup(func() { rdb.Del(context.Background(), e.queue, e.queue+":by") })
	py := e.python("json", 2)
	pw := py.StartWorker()
	e.startWorker(map[string]worker.Handler{
		"tasks.shared": worker.Func(func(ctx context.Context, key string) (string, error) {
			if err := rdb.HIncrBy(ctx, e.queue, key, 1).Err(); err != nil {
				return "", err
			}
			return "go", rdb.HIncrBy(ctx, e.queue+":by", "go", 1).Err()
		}),
	})
	prod, err := broker.NewProducer(broker.ProducerConfig{Broker: e.broker, Backend: e.backend, DefaultQueue: e.queue})
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		if _, err := prod.Send(ctx, "tasks.shared", []any{fmt.Sprintf("k%d", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		by, err := rdb.HGetAll(ctx, e.queue+":by").Result()
		if err != nil {
			t.Fatal(err)
		}
		var total int
		for _, v := range by {
			var k int
			fmt.Sscan(v, &k)
			total += k
		}
		if total >= n {
			if by["go"] == "" || by["python"] == "" {
				t.Errorf("both workers should take part: %v", by)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks ran: %v\npython worker:\n%s\ngo worker:\n%s", total, n, by, pw.Logs(), e.logs)
		}
		time.Sleep(50 * time.Millisecond) // polling to a deadline
	}
	counts, err := rdb.HGetAll(ctx, e.queue).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := counts[fmt.Sprintf("k%d", i)]; c != "1" {
			t.Errorf("task k%d ran %q times", i, c)
		}
	}
	if strings.Contains(pw.Logs(), "PRECONDITION_FAILED") || strings.Contains(e.logs.String(), "PRECONDITION_FAILED") {
		t.Error("a worker hit PRECONDITION_FAILED")
	}
}

// TestAMQPPickleRefused: a pickle message is rejected with a logged reason
// and not requeued.
func TestAMQPPickleRefused(t *testing.T) {
	t.Parallel()
	e := newAMQPEnv(t)
	e.startWorker(nil)
	py := e.python("pickle", 2)
	py.Publish("celeriac.add", []any{2, 3}, nil, nil)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.logs.String(), "application/x-python-serialize") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged:\n%s", e.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling to a deadline
	}
	// After the worker stops, nothing unacked returns to the queue: the
	// message was dropped, not requeued.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.w = nil
	info, err := e.broker.Inspect(ctx, e.queue)
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 0 {
		t.Fatalf("queue holds %d messages after a refused pickle message", info.Messages)
	}
	if n := strings.Count(e.logs.String(), "message rejected"); n != 1 {
		t.Errorf("the pickle message was rejected %d times, want once:\n%s", n, e.logs)
	}
}

// TestAMQPCountdownParked: a Python countdown beyond the worker's hold
// horizon is parked in RabbitMQ (PublishAt's delay ladder) and runs when due.
func TestAMQPCountdownParked(t *testing.T) {
	t.Parallel()
	e := newAMQPEnv(t)
	e.startWorker(nil, func(c *worker.Config) { c.ETAHoldHorizon = 500 * time.Millisecond })
	py := e.python("json", 2)
	start := time.Now()
	out := py.Send("celeriac.add", []any{2, 3}, nil, map[string]any{"countdown": 5})
	if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result != 5.0 {
		t.Fatalf("countdown task: %+v\n%s", out, e.logs)
	}
	if took := time.Since(start); took < 4*time.Second {
		t.Errorf("ran after %v, before its countdown", took)
	}
	if !strings.Contains(e.logs.String(), "ETA task parked in the broker") {
		t.Errorf("the task was not parked:\n%s", e.logs)
	}
}
