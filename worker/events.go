package worker

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// Version is reported as sw_ver in worker events and stats.
var Version = "0.1.0"

// lamport is Celery's logical clock, shared by events and remote control.
type lamport struct{ v atomic.Int64 }

func (l *lamport) tick() int64 { return l.v.Add(1) }

// adjust moves the clock past a clock value seen in a message.
func (l *lamport) adjust(seen int64) int64 {
	for {
		cur := l.v.Load()
		next := max(cur, seen) + 1
		if l.v.CompareAndSwap(cur, next) {
			return next
		}
	}
}

// events sends Celery events: worker-online/heartbeat/offline always
// (unless heartbeats are off), task-* events when enabled (-E, or the
// enable_events control command that Flower sends).
//
// Task events are buffered and published as arrays on "task.multi", as a
// prefork Celery worker does, so one message carries many events; the
// task path never waits on the broker and drops events (counting them)
// rather than block when the broker is slow.
type events struct {
	w       *Worker
	enabled atomic.Bool
	clock   lamport
	ch      chan map[string]any
	stop    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Int64
	freq    time.Duration
	pid     int
}

const eventBuffer = 10000

func newEvents(w *Worker) *events {
	e := &events{w: w, ch: make(chan map[string]any, eventBuffer), stop: make(chan struct{}),
		freq: w.cfg.HeartbeatInterval, pid: os.Getpid()}
	e.enabled.Store(w.cfg.TaskEvents)
	return e
}

// utcoffset is Celery's utcoffset: hours west of UTC.
func utcoffset(t time.Time) int {
	_, off := t.Zone()
	h := -off / 3600
	if -off%3600 != 0 && -off < 0 {
		h--
	}
	return h
}

func (e *events) base(typ string) map[string]any {
	now := e.w.now()
	return map[string]any{
		"type": typ, "hostname": e.w.hostname, "pid": e.pid, "clock": e.clock.tick(),
		"timestamp": float64(now.UnixNano()) / 1e9, "utcoffset": utcoffset(time.Now()),
	}
}

// task queues a task event if task events are on.
func (e *events) task(typ string, j *job, fields map[string]any) {
	if !e.enabled.Load() {
		return
	}
	ev := e.base(typ)
	ev["uuid"] = j.id()
	for k, v := range fields {
		ev[k] = v
	}
	select {
	case e.ch <- ev:
	default:
		e.dropped.Add(1)
	}
}

func (e *events) workerEvent(typ string) map[string]any {
	ev := e.base(typ)
	ev["freq"] = e.freq.Seconds()
	ev["active"] = e.w.activeCount()
	ev["processed"] = e.w.processed.Load()
	ev["loadavg"] = loadavg()
	ev["sw_ident"] = "celeriac"
	ev["sw_ver"] = Version
	ev["sw_sys"] = strings.ToUpper(runtime.GOOS[:1]) + runtime.GOOS[1:]
	return ev
}

// start announces the worker and runs the heartbeat and flush loops.
func (e *events) start(ctx context.Context) {
	if err := e.w.cfg.Broker.DeclareExchange(ctx, broker.EventExchange); err != nil {
		e.w.log.Warn("declaring the event exchange failed; events will not be sent", "error", err)
	}
	e.publish(ctx, "worker.online", e.workerEvent("worker-online"))
	e.wg.Add(1)
	go e.loop()
}

func (e *events) loop() {
	defer e.wg.Done()
	var hb <-chan time.Time
	if e.freq > 0 {
		t := time.NewTicker(e.freq)
		defer t.Stop()
		hb = t.C
	}
	flush := time.NewTicker(100 * time.Millisecond)
	defer flush.Stop()
	var batch []any
	send := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.publish(ctx, "task.multi", batch)
		cancel()
		batch = nil
	}
	for {
		select {
		case ev := <-e.ch:
			batch = append(batch, ev)
			if len(batch) >= 100 {
				send()
			}
		case <-flush.C:
			send()
		case <-hb:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e.publish(ctx, "worker.heartbeat", e.workerEvent("worker-heartbeat"))
			cancel()
		case <-e.stop:
			for {
				select {
				case ev := <-e.ch:
					batch = append(batch, ev)
				default:
					send()
					return
				}
			}
		}
	}
}

// heartbeat sends one heartbeat now (the heartbeat control command).
func (e *events) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := e.workerEvent("worker-heartbeat")
	ev["freq"] = 5.0
	e.publish(ctx, "worker.heartbeat", ev)
}

// shutdown flushes task events and says worker-offline.
func (e *events) shutdown() {
	close(e.stop)
	e.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.publish(ctx, "worker.offline", e.workerEvent("worker-offline"))
}

func (e *events) publish(ctx context.Context, rk string, body any) {
	b, err := broker.MarshalJSON(body)
	if err != nil {
		e.w.log.Warn("encoding an event failed", "error", err)
		return
	}
	msg := &broker.Message{Body: b, ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"hostname": e.w.hostname}, Properties: broker.Properties{DeliveryMode: 1}}
	if err := e.w.cfg.Broker.Publish(ctx, broker.Publishing{Exchange: broker.EventExchange.Name, RoutingKey: rk, Message: msg}); err != nil {
		e.w.log.Debug("sending an event failed", "routing_key", rk, "error", err)
	}
}

// loadavg reads /proc/loadavg (rounded to two decimals, as Celery does).
func loadavg() []any {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return []any{0.0, 0.0, 0.0}
	}
	f := strings.Fields(string(b))
	out := make([]any, 0, 3)
	for i := 0; i < 3 && i < len(f); i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		out = append(out, float64(int(v*100+0.5))/100)
	}
	return out
}

// eventObserver turns task steps into Celery task events.
type eventObserver struct{ e *events }

func (o eventObserver) received(j *job) {
	o.e.task("task-received", j, map[string]any{
		"name": j.t.Name, "args": argsRepr(j.t), "kwargs": kwargsRepr(j.t), "root_id": j.t.RootID,
		"parent_id": nullable(j.t.ParentID), "retries": j.t.Retries, "eta": isoOrNil(j.t.ETA), "expires": isoOrNil(j.t.Expires),
	})
}

func (o eventObserver) started(j *job) {
	o.e.task("task-started", j, map[string]any{"pid": o.e.pid})
}

func (o eventObserver) succeeded(j *job, out *outcome) {
	o.e.task("task-succeeded", j, map[string]any{"result": broker.Repr(out.value), "runtime": out.runtime.Seconds()})
}

func (o eventObserver) failed(j *job, out *outcome) {
	o.e.task("task-failed", j, map[string]any{"exception": excRepr(out.exc), "traceback": out.traceback})
}

func (o eventObserver) retried(j *job, out *outcome) {
	exc := "Retry()"
	if out.exc != nil {
		exc = excRepr(out.exc)
	}
	o.e.task("task-retried", j, map[string]any{"exception": exc, "traceback": out.traceback})
}

func (o eventObserver) revoked(j *job, reason string, expired bool) {
	o.e.task("task-revoked", j, map[string]any{"terminated": reason == "terminated", "signum": nil, "expired": expired})
}

func (o eventObserver) rejected(j *job, reason string) {
	o.e.task("task-rejected", j, map[string]any{"requeue": false})
}

func (o eventObserver) ignored(j *job) {}

func argsRepr(t *broker.Task) string {
	if t.ArgsRepr != "" {
		return t.ArgsRepr
	}
	return broker.ArgsRepr(t.Args)
}

func kwargsRepr(t *broker.Task) string {
	if t.KwargsRepr != "" {
		return t.KwargsRepr
	}
	return broker.Repr(t.Kwargs)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func isoOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return broker.FormatTime(*t)
}

// excRepr renders an exception as Python's repr: ValueError('bad').
func excRepr(e *broker.ExceptionInfo) string {
	if e == nil {
		return "Exception()"
	}
	a := broker.ArgsRepr(e.Message)
	if len(e.Message) == 1 {
		a = strings.TrimSuffix(a, ",)") + ")"
	}
	return e.Type + a
}
