package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/lock"
)

// job is one task message on its way through the worker:
//
//	decode → admit → (hold until ETA) → schedule → [pool] guard → execute → record → follow up → settle
//
// Each step lives in its own file; a step that refuses a message settles
// it and says why in one log line.
type job struct {
	d        *broker.Delivery
	t        *broker.Task
	reg      *registered
	received time.Time
	started  time.Time

	// settled is set once the message has been acked or rejected.
	settled bool
	// earlyAcked: acknowledged before running (AckEarly tasks).
	earlyAcked bool
	// cancel cancels the running task's context (revoke with terminate).
	cancel context.CancelCauseFunc
	// lease is the task's exactly-once lease while it runs.
	lease *lock.Lease
}

// id and name are safe on jobs whose message could not be decoded.
func (j *job) id() string {
	if j.t == nil {
		return ""
	}
	return j.t.ID
}

func (j *job) name() string {
	if j.t == nil {
		return ""
	}
	return j.t.DisplayName()
}

func (w *Worker) consumeLoop(c broker.Consumer) {
	defer w.wg.Done()
	for d := range c.Deliveries() {
		w.receive(d)
	}
}

// receive takes one delivery through the steps that run in the consumer
// goroutine: they are cheap and must not block.
func (w *Worker) receive(d *broker.Delivery) {
	w.inflight.Add(1)
	j := &job{d: d, received: w.now()}
	if !w.decode(j) || !w.admit(j) {
		return
	}
	w.obs.received(j)
	if j.t.ETA != nil && j.t.ETA.After(w.now()) {
		w.eta.hold(j)
		return
	}
	w.schedule(j)
}

// decode turns the delivery into a task; a message that is not one is
// rejected without requeue (it would fail the same way forever).
func (w *Worker) decode(j *job) bool {
	t, err := broker.DecodeTask(j.d.Message)
	if err != nil {
		if id, _ := j.d.Message.Header("id").(string); id != "" {
			j.t = &broker.Task{ID: id}
			if name, ok := j.d.Message.Header("task").(string); ok {
				j.t.Name = name
			}
		}
		w.reject(j, false, "malformed message: "+err.Error())
		return false
	}
	j.t = t
	return true
}

// schedule queues a due task to run when a slot is free, after its rate
// limit allows it.
func (w *Worker) schedule(j *job) {
	if w.throttle(j) {
		return
	}
	w.runq.push(j)
}

// poolLoop is one of Concurrency goroutines running tasks.
func (w *Worker) poolLoop() {
	defer w.wg.Done()
	for {
		j, ok := w.runq.pop()
		if !ok {
			return
		}
		w.process(j)
	}
}

// process runs a due task and settles its message.
func (w *Worker) process(j *job) {
	if !w.admitBeforeRun(j) || !w.guardEnter(j) {
		return
	}
	out := w.execute(j)
	w.complete(j, out)
}

// settleCtx bounds broker calls that settle a message.
func settleCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// ack acknowledges the job's message once.
func (w *Worker) ack(j *job) {
	if j.settled {
		return
	}
	j.settled = true
	defer w.inflight.Add(-1)
	ctx, cancel := settleCtx()
	defer cancel()
	if err := j.d.Ack(ctx); err != nil && !errors.Is(err, broker.ErrAcknowledged) {
		// The broker requeues an unacked message; a duplicate run is
		// caught by the exactly-once guard where it is enabled.
		w.log.Warn("ack failed; the broker will redeliver the message", "task_id", j.id(), "task", j.name(), "error", err)
	}
}

// reject refuses the job's message, with a reason for the log.
func (w *Worker) reject(j *job, requeue bool, reason string) {
	if j.settled {
		return
	}
	j.settled = true
	defer w.inflight.Add(-1)
	ctx, cancel := settleCtx()
	defer cancel()
	lvl := slog.LevelError
	if requeue {
		lvl = slog.LevelInfo
	}
	w.log.Log(ctx, lvl, "message rejected", "task_id", j.id(), "task", j.name(), "requeue", requeue, "reason", reason)
	if err := j.d.Reject(ctx, requeue); err != nil && !errors.Is(err, broker.ErrAcknowledged) {
		w.log.Warn("reject failed", "task_id", j.id(), "error", err)
	}
	if !requeue {
		w.obs.rejected(j, reason)
	}
}

// requeue returns a message that was received but not run (shutdown).
func (w *Worker) requeue(j *job) {
	if j.settled {
		return
	}
	j.settled = true
	defer w.inflight.Add(-1)
	ctx, cancel := settleCtx()
	defer cancel()
	if err := j.d.Reject(ctx, true); err != nil && !errors.Is(err, broker.ErrAcknowledged) {
		w.log.Debug("requeue failed; the broker returns it when the connection closes", "task_id", j.id(), "error", err)
	}
}
