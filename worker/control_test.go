package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/worker"
)

// call sends a remote-control command as `celery inspect` does.
func (e *env) call(method string, args map[string]any) any {
	e.t.Helper()
	c := broker.NewControl(e.client)
	replies, err := c.Call(context.Background(), method, args, []string{e.w.Hostname()}, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	r, ok := replies[e.w.Hostname()]
	if !ok {
		e.t.Fatalf("%s: no reply from %s (got %v)", method, e.w.Hostname(), replies)
	}
	return r
}

func TestRemoteControl(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	e.w.MustRegister("tasks.block", worker.Func(func(ctx context.Context) error {
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}), worker.RateLimit("10/m"))
	e.start()
	defer close(release)

	if got := e.call("ping", nil); mustJSON(t, got) != `{"ok": "pong"}` {
		t.Errorf("ping: %s", mustJSON(t, got))
	}
	reg := mustJSON(t, e.call("registered", map[string]any{"taskinfoitems": []any{}}))
	if !strings.Contains(reg, `"celeriac.add"`) || !strings.Contains(reg, `"tasks.block [rate_limit=10/m]"`) {
		t.Errorf("registered: %s", reg)
	}
	r := e.send("tasks.block", nil, nil)
	<-started
	active := e.call("active", nil).([]any)
	if len(active) != 1 || active[0].(map[string]any)["id"] != r.ID || active[0].(map[string]any)["hostname"] != e.w.Hostname() {
		t.Errorf("active: %s", mustJSON(t, active))
	}
	later := e.send("celeriac.noop", nil, nil, broker.WithCountdown(20*time.Second))
	waitFor(t, func() bool { return len(e.call("scheduled", nil).([]any)) == 1 })
	sched := e.call("scheduled", nil).([]any)[0].(map[string]any)
	if sched["request"].(map[string]any)["id"] != later.ID || sched["eta"] == nil {
		t.Errorf("scheduled: %s", mustJSON(t, sched))
	}
	stats := e.call("stats", nil).(map[string]any)
	if stats["pid"] == nil || stats["pool"].(map[string]any)["max-concurrency"] != int64(2) {
		t.Errorf("stats: %s", mustJSON(t, stats))
	}
	if got := mustJSON(t, e.call("rate_limit", map[string]any{"task_name": "tasks.block", "rate_limit": "1/s"})); got != `{"ok": "new rate limit set successfully"}` {
		t.Errorf("rate_limit: %s", got)
	}
	if e.w.RateLimit("tasks.block") != "1/s" {
		t.Errorf("rate limit not applied: %q", e.w.RateLimit("tasks.block"))
	}
	if got := mustJSON(t, e.call("rate_limit", map[string]any{"task_name": "nope", "rate_limit": "1/s"})); got != `{"error": "unknown task"}` {
		t.Errorf("rate_limit unknown: %s", got)
	}
	if got := mustJSON(t, e.call("time_limit", map[string]any{"task_name": "tasks.block", "soft": 1, "hard": 2})); got != `{"ok": "time limits set successfully"}` {
		t.Errorf("time_limit: %s", got)
	}
	if got := mustJSON(t, e.call("revoke", map[string]any{"task_id": []any{"a", "b"}})); got != `{"ok": "tasks a, b flagged as revoked"}` {
		t.Errorf("revoke: %s", got)
	}
	if rev := e.call("revoked", nil).([]any); len(rev) != 2 {
		t.Errorf("revoked: %v", rev)
	}
	if got := mustJSON(t, e.call("revoke", map[string]any{"task_id": r.ID, "terminate": true, "signal": "SIGTERM"})); got != `{"ok": "terminate: `+r.ID+`"}` {
		t.Errorf("terminate: %s", got)
	}
	if m := e.wait(r); m.Status != broker.StateRevoked {
		t.Errorf("terminated task: %s", m.Status)
	}
	if got := mustJSON(t, e.call("enable_events", nil)); got != `{"ok": "task events enabled"}` {
		t.Errorf("enable_events: %s", got)
	}
	if got := mustJSON(t, e.call("enable_events", nil)); got != `{"ok": "task events already enabled"}` {
		t.Errorf("enable_events twice: %s", got)
	}
	q2 := "extra_" + e.queue
	if got := mustJSON(t, e.call("add_consumer", map[string]any{"queue": q2})); got != `{"ok": "add consumer `+q2+`"}` {
		t.Errorf("add_consumer: %s", got)
	}
	aq := mustJSON(t, e.call("active_queues", nil))
	if !strings.Contains(aq, q2) || !strings.Contains(aq, e.queue) {
		t.Errorf("active_queues: %s", aq)
	}
	if got := mustJSON(t, e.call("cancel_consumer", map[string]any{"queue": q2})); got != `{"ok": "no longer consuming from `+q2+`"}` {
		t.Errorf("cancel_consumer: %s", got)
	}
	if got := mustJSON(t, e.call("frobnicate", nil)); !strings.Contains(got, "No such command") {
		t.Errorf("unknown command: %s", got)
	}
	// shutdown never replies; it asks the owner to stop.
	if err := broker.NewControl(e.client).Cast(context.Background(), "shutdown", nil, []string{e.w.Hostname()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.w.ShutdownRequested():
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown command not delivered")
	}
}

func TestControlIgnoresOtherDestinations(t *testing.T) {
	e := newEnv(t, nil)
	e.start()
	replies, err := broker.NewControl(e.client).Call(context.Background(), "ping", nil, []string{"someone@else"}, 300*time.Millisecond)
	if err != nil || len(replies) != 0 {
		t.Fatalf("replies %v err %v", replies, err)
	}
	// No destination: every worker answers.
	replies, err = broker.NewControl(e.client).Call(context.Background(), "ping", nil, nil, 300*time.Millisecond)
	if err != nil || len(replies) != 1 {
		t.Fatalf("broadcast ping: %v %v", replies, err)
	}
}

func TestEventsReachTheExchange(t *testing.T) {
	e := newEnv(t, func(c *worker.Config) { c.TaskEvents = true; c.HeartbeatInterval = 50 * time.Millisecond })
	q := broker.Queue{Name: "ev_" + e.queue, Exchange: broker.EventExchange, RoutingKey: "#", AutoDelete: true}
	cons, err := e.client.Consume(context.Background(), broker.ConsumeOptions{Queues: []broker.Queue{q}, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Cancel(context.Background())
	e.start()
	e.wait(e.send("celeriac.add", []any{1, 2}, nil))
	seen := map[string]map[string]any{}
	deadline := time.After(10 * time.Second)
	for seen["task-succeeded"] == nil || seen["worker-heartbeat"] == nil || seen["task-received"] == nil {
		select {
		case d := <-cons.Deliveries():
			v, err := broker.Unmarshal(d.Message.ContentType, d.Message.Body)
			if err != nil {
				t.Fatal(err)
			}
			evs, ok := v.([]any)
			if !ok {
				evs = []any{v}
			}
			for _, ev := range evs {
				m := ev.(map[string]any)
				seen[m["type"].(string)] = m
			}
		case <-deadline:
			t.Fatalf("events seen: %v", seen)
		}
	}
	if s := seen["task-succeeded"]; s["result"] != "3" || s["hostname"] != e.w.Hostname() || s["runtime"] == nil || s["clock"] == nil {
		t.Errorf("task-succeeded: %v", s)
	}
	if r := seen["task-received"]; r["name"] != "celeriac.add" || r["args"] != "(1, 2)" {
		t.Errorf("task-received: %v", r)
	}
	hb := seen["worker-heartbeat"]
	for _, k := range []string{"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys", "timestamp", "utcoffset", "pid"} {
		if _, ok := hb[k]; !ok {
			t.Errorf("heartbeat lacks %s: %v", k, hb)
		}
	}
}
