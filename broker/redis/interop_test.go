package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	resultredis "github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
)

// goWorker runs a Go worker on brokerURL consuming queue, with the
// built-in tasks and tasks.shared (which counts into counterHash the way
// celeryapp.py's does).
func goWorker(t *testing.T, brokerURL, queue, counterHash string, cfg Config, mutate ...func(*worker.Config)) (*worker.Worker, *Broker) {
	t.Helper()
	cfg.URL = brokerURL
	b := open(t, cfg)
	rb, err := resultredis.New(testCtx(t, 10*time.Second), resultredis.Config{URL: brokerURL, Expires: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rb.Close() })
	wc := worker.Config{Broker: b, Backend: rb, Queues: []broker.Queue{broker.TaskQueue(queue)},
		DefaultQueue: queue, Concurrency: 2, Hostname: "go@" + queue}
	for _, f := range mutate {
		f(&wc)
	}
	w, err := worker.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		t.Fatal(err)
	}
	counter := b.Client()
	err = w.Register("tasks.shared", worker.Func(func(ctx context.Context, key string) (string, error) {
		// Both counts in one transaction: a test that sees the first
		// must see the second.
		_, err := counter.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HIncrBy(ctx, counterHash+":by", "go", 1)
			p.HIncrBy(ctx, counterHash, key, 1)
			return nil
		})
		return "go", err
	}, worker.ArgNames("key")))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, w)
	return w, b
}

func TestInteropPythonClientGoWorker(t *testing.T) {
	url := testenv.RedisURL(t)
	q := testenv.Prefix(t)
	app := celerytest.New(t, celerytest.Config{Broker: url, Backend: url, Queue: q})
	goWorker(t, url, q, q+":count", Config{})
	for _, tc := range []struct {
		name string
		opts map[string]any
	}{{"plain", nil}, {"priority", map[string]any{"priority": 7}}, {"countdown", map[string]any{"countdown": 1}}} {
		t.Run(tc.name, func(t *testing.T) {
			out := app.Send("celeriac.add", []any{2, 3}, nil, tc.opts)
			if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result != float64(5) {
				t.Fatalf("Python saw %+v", out)
			}
		})
	}
}

func TestInteropGoProducerPythonWorker(t *testing.T) {
	url := testenv.RedisURL(t)
	q := testenv.Prefix(t)
	app := celerytest.New(t, celerytest.Config{Broker: url, Backend: url, Queue: q})
	app.StartWorker()
	ctx := testCtx(t, 60*time.Second)
	b := open(t, Config{URL: url})
	rb, err := resultredis.New(ctx, resultredis.Config{URL: url, Expires: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb, DefaultQueue: q})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []broker.SendOption
	}{{"plain", nil}, {"priority", []broker.SendOption{broker.WithPriority(9)}}, {"countdown", []broker.SendOption{broker.WithCountdown(time.Second)}}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Send(ctx, "tasks.py_add", []any{2, 3}, nil, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			v, err := r.Get(ctx)
			if err != nil || v != int64(5) {
				t.Fatalf("Go read %v (%T), %v", v, v, err)
			}
		})
	}
}

// waitCount polls the shared counter hash until n executions are counted.
func waitCount(t *testing.T, rdb goredis.Cmdable, hash string, n int) map[string]string {
	t.Helper()
	var got map[string]string
	err := redistest.Eventually(90*time.Second, func() error {
		var err error
		if got, err = rdb.HGetAll(context.Background(), hash).Result(); err != nil {
			return err
		}
		if len(got) < n {
			return fmt.Errorf("%d of %d tasks ran", len(got), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestInteropSharedQueueEachMessageOnce(t *testing.T) {
	url := testenv.RedisURL(t)
	q := testenv.Prefix(t)
	hash := q + ":count"
	app := celerytest.New(t, celerytest.Config{Broker: url, Backend: url, Queue: q, CounterURL: url, CounterHash: hash})
	app.StartWorker()
	_, b := goWorker(t, url, q, hash, Config{})
	t.Cleanup(func() { b.Client().Del(context.Background(), hash, hash+":by") })
	const n = 60
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, fmt.Sprintf("k%d", i))
	}
	// Half from Python, half from Go, interleaved in one queue.
	ctx := testCtx(t, 120*time.Second)
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, DefaultQueue: q})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ids[n/2:] {
		if _, err := p.Send(ctx, "tasks.shared", []any{k}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range ids[:n/2] {
		app.Publish("tasks.shared", []any{k}, nil, map[string]any{"ignore_result": true})
	}
	got := waitCount(t, b.Client(), hash, n)
	for _, k := range ids {
		if got[k] != "1" {
			t.Errorf("task %s ran %s times", k, got[k])
		}
	}
	by, _ := b.Client().HGetAll(ctx, hash+":by").Result()
	t.Logf("executions by worker: %v", by)
	if info, err := b.Inspect(ctx, q); err != nil || info.Messages != 0 {
		t.Errorf("queue left with %+v, %v", info, err)
	}
}

// A Python worker killed while holding an unacknowledged message (an ETA
// task): a Go worker restores it after the visibility timeout and runs it.
func TestInteropPythonCrashRestoredByGo(t *testing.T) {
	s := privateRedis(t) // a short visibility timeout must not touch others' messages
	url := s.URL()
	q := testenv.Prefix(t)
	hash := q + ":count"
	app := celerytest.New(t, celerytest.Config{Broker: url, Backend: url, Queue: q, CounterURL: url, CounterHash: hash})
	pw := app.StartWorker()
	ids := app.Publish("tasks.shared", []any{"restored"}, nil, map[string]any{"countdown": 4})
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := testCtx(t, 60*time.Second)
	// The Python worker has it when it sits in the unacked hash.
	if err := redistest.Eventually(30*time.Second, func() error {
		n, err := rdb.HLen(ctx, unackedKey).Result()
		if err == nil && n != 1 {
			err = fmt.Errorf("unacked holds %d", n)
		}
		return err
	}); err != nil {
		t.Fatalf("%v\n%s", err, pw.Logs())
	}
	pw.Kill()
	if !strings.Contains(pw.Logs(), ids[0]) {
		t.Logf("python worker log:\n%s", pw.Logs())
	}
	waitVisible(t, ctx, rdb, time.Second)
	goWorker(t, url, q, hash, Config{VisibilityTimeout: time.Second})
	got := waitCount(t, rdb, hash, 1)
	if got["restored"] != "1" {
		t.Fatalf("counts %v", got)
	}
	if by, _ := rdb.HGetAll(ctx, hash+":by").Result(); by["go"] != "1" {
		t.Fatalf("ran by %v, want the Go worker", by)
	}
	// The result follows the side effect.
	if err := redistest.Eventually(10*time.Second, func() error {
		r, err := rdb.Get(ctx, "celery-task-meta-"+ids[0]).Result()
		if err == nil && !strings.Contains(r, `"SUCCESS"`) {
			err = fmt.Errorf("result %s", r)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// Remote control and events cross over pub/sub: Python's `celery inspect
// ping` reaches a Go worker, and Python's event receiver sees its
// heartbeats.
func TestInteropControlAndEvents(t *testing.T) {
	url := testenv.RedisURL(t)
	q := testenv.Prefix(t)
	b := open(t, Config{URL: url})
	w, err := worker.New(worker.Config{Broker: b, Queues: []broker.Queue{broker.TaskQueue(q)}, DefaultQueue: q,
		Hostname: "go@" + q, TaskEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, w)
	app := celerytest.New(t, celerytest.Config{Broker: url, Queue: q})
	out := app.Exec(`
import json, socket
from celeryapp import app
print(json.dumps(app.control.ping(destination=["go@` + q + `"], timeout=5)))
got = []
host = "go@` + q + `"
with app.connection() as conn:
    def on(e):
        if e.get("hostname") == host:
            got.append([e["type"], host])
            if e["type"] == "worker-heartbeat":
                recv.should_stop = True
    recv = app.events.Receiver(conn, handlers={"*": on})
    try:
        recv.capture(limit=None, timeout=10)
    except socket.timeout:
        pass
print(json.dumps(got))
`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != `[{"go@`+q+`": {"ok": "pong"}}]` {
		t.Fatalf("ping answered %q", out)
	}
	if !strings.Contains(lines[1], `["worker-heartbeat", "go@`+q+`"]`) {
		t.Fatalf("Python's event receiver saw %s", lines[1])
	}
}

// A Go consumer dies holding a message: kombu (with a short visibility
// timeout) restores it from the bookkeeping the Go side wrote and delivers
// it, marked redelivered.
func TestInteropGoCrashRestoredByKombu(t *testing.T) {
	s := privateRedis(t)
	url := s.URL()
	q := broker.TaskQueue(testenv.Prefix(t))
	ctx := testCtx(t, 60*time.Second)
	a := open(t, Config{URL: url})
	if err := a.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	m := &broker.Message{Body: []byte(`"payload"`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"id": "go-1"}, Properties: broker.Properties{DeliveryMode: 2}}
	if err := a.Publish(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}); err != nil {
		t.Fatal(err)
	}
	c, err := a.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	recv(t, c, 10*time.Second)
	crash(a)
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	waitVisible(t, ctx, rdb, time.Second)

	app := celerytest.New(t, celerytest.Config{Broker: url, Queue: q.Name})
	out := app.Exec(`
import json, socket
from kombu import Connection, Exchange, Queue
got = []
with Connection("` + url + `", transport_options={"visibility_timeout": 1}) as conn:
    q = Queue("` + q.Name + `", Exchange("` + q.Name + `", "direct"), "` + q.Name + `")
    def on(body, message):
        got.append({"body": body, "headers": message.headers, "info": message.delivery_info})
        message.ack()
    with conn.Consumer(q, callbacks=[on], accept=["json"]):
        for _ in range(20):
            try:
                conn.drain_events(timeout=1)
            except socket.timeout:
                pass
            if got:
                break
print(json.dumps(got))
`)
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("kombu consumed %s (%v)", out, err)
	}
	g := got[0]
	h, _ := g["headers"].(map[string]any)
	info, _ := g["info"].(map[string]any)
	if g["body"] != "payload" || h["id"] != "go-1" || h["redelivered"] != true || info["redelivered"] != true ||
		info["exchange"] != q.Name || info["routing_key"] != q.Name {
		t.Fatalf("kombu saw %s", out)
	}
	if n, _ := rdb.HLen(ctx, unackedKey).Result(); n != 0 {
		t.Errorf("unacked hash holds %d entries", n)
	}
}

// A Python countdown beyond the Go worker's hold horizon is parked in
// Redis (PublishAt's sorted set), comes back when due, runs once, and
// Python reads the result.
func TestInteropPythonCountdownParked(t *testing.T) {
	url := testenv.RedisURL(t)
	q := testenv.Prefix(t)
	app := celerytest.New(t, celerytest.Config{Broker: url, Backend: url, Queue: q})
	_, b := goWorker(t, url, q, q+":count", Config{}, func(c *worker.Config) { c.ETAHoldHorizon = 500 * time.Millisecond })
	ctx := testCtx(t, 60*time.Second)
	start := time.Now()
	ids := app.Publish("celeriac.add", []any{20, 22}, nil, map[string]any{"countdown": 3})
	// It waits in the parked set, not in the worker.
	if err := redistest.Eventually(10*time.Second, func() error {
		members, err := b.Client().ZRange(ctx, delayedKey, 0, -1).Result()
		for _, m := range members {
			if strings.Contains(m, ids[0]) {
				return nil
			}
		}
		if err == nil {
			err = fmt.Errorf("task %s not parked", ids[0])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := app.Get(ids[0])
	if out.State != "SUCCESS" || out.Result != float64(42) {
		t.Fatalf("Python saw %+v", out)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("ran after %v, before its countdown", el)
	}
}

// kombu's global_keyprefix: every key carries the prefix on both sides. A
// message kombu publishes reaches the Go consumer; the Go consumer dies
// holding it; kombu restores it from the prefixed unacked hash.
func TestInteropGlobalKeyPrefix(t *testing.T) {
	s := privateRedis(t)
	url := s.URL()
	const pfx = "app1:"
	q := testenv.Prefix(t)
	ctx := testCtx(t, 60*time.Second)
	app := celerytest.New(t, celerytest.Config{Broker: url, Queue: q})
	kombu := func(code string) string {
		return app.Exec(`
import json, socket
from kombu import Connection, Exchange, Queue
q = Queue("` + q + `", Exchange("` + q + `", "direct"), "` + q + `")
with Connection("` + url + `", transport_options={"global_keyprefix": "` + pfx + `", "visibility_timeout": 1}) as conn:
` + code)
	}
	kombu(`
    conn.Producer(conn.channel()).publish("from kombu", exchange=q.exchange, routing_key=q.routing_key, declare=[q], serializer="json")
`)
	a := open(t, Config{URL: url + "?global_keyprefix=" + pfx})
	c, err := a.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{broker.TaskQueue(q)}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, c, 10*time.Second)
	if string(d.Message.Body) != `"from kombu"` {
		t.Fatalf("Go got %s", d.Message.Body)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if n, _ := rdb.HLen(ctx, pfx+unackedKey).Result(); n != 1 {
		t.Fatalf("prefixed unacked hash holds %d", n)
	}
	crash(a)
	waitVisiblePrefixed(t, ctx, rdb, pfx, time.Second)
	out := kombu(`
    got = []
    def on(body, message):
        got.append([body, message.delivery_info.get("redelivered")])
        message.ack()
    with conn.Consumer(q, callbacks=[on], accept=["json"]):
        for _ in range(20):
            try:
                conn.drain_events(timeout=1)
            except socket.timeout:
                pass
            if got:
                break
    print(json.dumps(got))
`)
	if strings.TrimSpace(out) != `[["from kombu", true]]` {
		t.Fatalf("kombu restored %s", out)
	}
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if !strings.HasPrefix(k, pfx) {
			t.Errorf("key %q lacks the prefix", k)
		}
	}
}
