package worker

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// observer is told about each step of a task's life. Logging, Celery
// events and metrics are observers; each method must be cheap and must
// not block (they run on the task path).
type observer interface {
	received(j *job)
	started(j *job)
	succeeded(j *job, out *outcome)
	failed(j *job, out *outcome)
	retried(j *job, out *outcome)
	revoked(j *job, reason string, expired bool)
	rejected(j *job, reason string)
	ignored(j *job)
}

// observers fans a notification out to several observers.
type observers []observer

func (os observers) received(j *job) {
	for _, o := range os {
		o.received(j)
	}
}

func (os observers) started(j *job) {
	for _, o := range os {
		o.started(j)
	}
}

func (os observers) succeeded(j *job, out *outcome) {
	for _, o := range os {
		o.succeeded(j, out)
	}
}

func (os observers) failed(j *job, out *outcome) {
	for _, o := range os {
		o.failed(j, out)
	}
}

func (os observers) retried(j *job, out *outcome) {
	for _, o := range os {
		o.retried(j, out)
	}
}

func (os observers) revoked(j *job, reason string, expired bool) {
	for _, o := range os {
		o.revoked(j, reason, expired)
	}
}

func (os observers) rejected(j *job, reason string) {
	for _, o := range os {
		o.rejected(j, reason)
	}
}

func (os observers) ignored(j *job) {
	for _, o := range os {
		o.ignored(j)
	}
}

// Log attribute keys, shared so log lines can be searched reliably.
const (
	logTaskID  = "task_id"
	logTask    = "task"
	logState   = "state"
	logRuntime = "runtime"
)

// logObserver writes one line per task outcome, at Celery's levels:
// success at INFO, failure at ERROR, retry at WARNING; receipt at DEBUG.
type logObserver struct{ log *slog.Logger }

func (l *logObserver) received(j *job) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("task received", logTaskID, j.t.ID, logTask, j.name(), "eta", j.t.ETA, "retries", j.t.Retries)
	}
}

func (l *logObserver) started(j *job) {}

func (l *logObserver) succeeded(j *job, out *outcome) {
	l.log.Info("task succeeded", logTaskID, j.t.ID, logTask, j.name(), logState, "SUCCESS", logRuntime, out.runtime.Seconds())
}

func (l *logObserver) failed(j *job, out *outcome) {
	l.log.Error("task failed", logTaskID, j.t.ID, logTask, j.name(), logState, "FAILURE", logRuntime, out.runtime.Seconds(),
		"exception", out.exc.Type, "error", out.err.Error())
}

func (l *logObserver) retried(j *job, out *outcome) {
	l.log.Warn("task retry scheduled", logTaskID, j.t.ID, logTask, j.name(), logState, "RETRY", logRuntime, out.runtime.Seconds(),
		"retries", j.t.Retries+1, "reason", out.err.Error())
}

func (l *logObserver) revoked(j *job, reason string, expired bool) {
	l.log.Info("task revoked", logTaskID, j.t.ID, logTask, j.name(), logState, "REVOKED", "reason", reason)
}

func (l *logObserver) rejected(j *job, reason string) {}

func (l *logObserver) ignored(j *job) {
	l.log.Info("task ignored", logTaskID, j.t.ID, logTask, j.name(), logState, "IGNORED")
}

// counter is a per-task-name count for stats' "total".
type counter struct{ n atomic.Int64 }

// totalsObserver counts finished tasks per name, as Celery's total_count.
type totalsObserver struct{ w *Worker }

func (o totalsObserver) count(j *job) {
	v, _ := o.w.totals.LoadOrStore(j.t.Name, &counter{})
	v.(*counter).n.Add(1)
}

func (o totalsObserver) received(j *job) {}
func (o totalsObserver) started(j *job)  {}
func (o totalsObserver) succeeded(j *job, out *outcome) {
	o.count(j)
}
func (o totalsObserver) failed(j *job, out *outcome) { o.count(j) }
func (o totalsObserver) retried(j *job, out *outcome) {
	o.count(j)
}
func (o totalsObserver) revoked(j *job, reason string, expired bool) {}
func (o totalsObserver) rejected(j *job, reason string)              {}
func (o totalsObserver) ignored(j *job)                              { o.count(j) }
