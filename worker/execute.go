package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// Errors a task context is cancelled with; read them with context.Cause.
var (
	// ErrSoftTimeLimit cancels a task's context at its soft time limit.
	// A handler can clean up and return; an error it returns is stored as
	// Celery's SoftTimeLimitExceeded.
	ErrSoftTimeLimit = errors.New("worker: soft time limit exceeded")
	// ErrHardTimeLimit cancels a task's context at its hard time limit;
	// by then the task has already been failed and its slot freed.
	ErrHardTimeLimit = errors.New("worker: hard time limit exceeded")
	// ErrWorkerShutdown cancels running tasks when Shutdown's deadline ends.
	ErrWorkerShutdown = errors.New("worker: shutting down")
)

// outcome is what running a task produced.
type outcome struct {
	state     broker.State // SUCCESS, FAILURE, RETRY, or "" for reject/ignore
	value     any
	err       error
	exc       *broker.ExceptionInfo
	traceback string
	runtime   time.Duration
	// requeue: reject with requeue (Reject error); ignore: ack, store nothing.
	requeue, ignore bool
}

// celeryError lets an error say which Python exception it is.
type celeryError interface {
	CeleryException() *broker.ExceptionInfo
}

// Exception returns an error that Python's AsyncResult re-raises as the
// given exception: Exception("builtins", "ValueError", "bad value").
func Exception(module, typ string, args ...any) error {
	return &exceptionError{info: broker.ExceptionInfo{Module: module, Type: typ, Message: args}}
}

type exceptionError struct{ info broker.ExceptionInfo }

func (e *exceptionError) Error() string {
	if txt := e.info.Text(); txt != "" {
		return e.info.Type + ": " + txt
	}
	return e.info.Type
}

func (e *exceptionError) CeleryException() *broker.ExceptionInfo { return &e.info }

// exceptionOf maps a Go error to the exception stored for Python. Errors
// that don't say otherwise become celeriac.TaskError with the error text;
// Python rebuilds such an unknown class as an Exception subclass.
func exceptionOf(err error) *broker.ExceptionInfo {
	var ce celeryError
	if errors.As(err, &ce) {
		if info := ce.CeleryException(); info != nil {
			return info
		}
	}
	return &broker.ExceptionInfo{Type: "TaskError", Module: "celeriac", Message: []any{err.Error()}}
}

// limits returns the soft and hard time limits for j: the message's
// timelimit header wins over the task's registered defaults.
func (w *Worker) limits(j *job) (soft, hard time.Duration) {
	j.reg.limitsMu.Lock()
	soft, hard = j.reg.softLimit, j.reg.hardLimit
	j.reg.limitsMu.Unlock()
	if d := j.t.SoftTimeLimit(); d > 0 {
		soft = d
	}
	if d := j.t.HardTimeLimit(); d > 0 {
		hard = d
	}
	return soft, hard
}

// execute runs the handler with the task's context and time limits.
func (w *Worker) execute(j *job) *outcome {
	req := &Request{Task: j.t, Hostname: w.hostname, Queue: j.d.Queue, Redelivered: j.d.Redelivered, Worker: w}
	base := w.taskCtx
	if j.lease != nil {
		req.FencingToken = j.lease.Token()
		// Renewed while the task runs; losing it cancels the task.
		base = j.lease.KeepAlive(base, w.cfg.GuardLease/3)
	}
	ctx, cancel := context.WithCancelCause(base)
	defer cancel(context.Canceled)
	j.cancel = cancel
	ctx = context.WithValue(ctx, requestKey{}, req)
	soft, hard := w.limits(j)
	if soft > 0 {
		var cancelSoft context.CancelFunc
		ctx, cancelSoft = context.WithTimeoutCause(ctx, soft, ErrSoftTimeLimit)
		defer cancelSoft()
	}

	if j.reg.ackEarly {
		w.ack(j)
		j.earlyAcked = true
	}
	if w.trackStarted(j) {
		w.storeState(j, broker.StateStarted, map[string]any{"pid": os.Getpid(), "hostname": w.hostname}, nil, false)
	}
	j.started = w.now()
	w.active.Store(j.t.ID, j)
	defer w.active.Delete(j.t.ID)
	w.obs.started(j)

	out := &outcome{}
	if hard <= 0 {
		out.value, out.err = w.call(ctx, j)
	} else {
		type result struct {
			v   any
			err error
		}
		done := make(chan result, 1)
		w.tasksWG.Add(1)
		go func() {
			defer w.tasksWG.Done()
			v, err := w.call(ctx, j)
			done <- result{v, err}
		}()
		timer := time.NewTimer(hard)
		select {
		case r := <-done:
			timer.Stop()
			out.value, out.err = r.v, r.err
		case <-timer.C:
			// The handler's goroutine cannot be killed: its context is
			// cancelled and its slot freed; a handler that ignores its
			// context keeps running detached until it returns.
			cancel(ErrHardTimeLimit)
			out.err = ErrHardTimeLimit
			out.exc = broker.ExcTimeLimit(hard.Seconds())
			w.log.Error("hard time limit exceeded; task failed and its slot freed", "task_id", j.t.ID, "task", j.name(), "limit", hard)
		}
	}
	out.runtime = w.now().Sub(j.started)
	w.classify(ctx, j, out)
	return out
}

// call runs the handler, turning a panic into an error with its stack.
func (w *Worker) call(ctx context.Context, j *job) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return j.reg.h.Run(ctx, j.t.Args, j.t.Kwargs)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func (e *panicError) CeleryException() *broker.ExceptionInfo {
	return &broker.ExceptionInfo{Type: "TaskPanic", Module: "celeriac", Message: []any{fmt.Sprint(e.value)}}
}

// classify turns the handler's return into a state and exception.
func (w *Worker) classify(ctx context.Context, j *job, out *outcome) {
	if out.err == nil {
		out.state = broker.StateSuccess
		return
	}
	if errors.Is(context.Cause(ctx), ErrTerminated) {
		out.state = broker.StateRevoked
		out.exc = broker.ExcRevoked("terminated")
		return
	}
	if w.classifyControl(j, out) {
		return
	}
	out.state = broker.StateFailure
	if out.exc == nil {
		if errors.Is(context.Cause(ctx), ErrSoftTimeLimit) && errors.Is(out.err, context.DeadlineExceeded) {
			out.exc = &broker.ExceptionInfo{Type: "SoftTimeLimitExceeded", Module: "celery.exceptions", Message: []any{out.err.Error()}}
		} else {
			out.exc = exceptionOf(out.err)
		}
	}
	out.traceback = traceback(j, out)
}

// traceback is the text stored in the result's traceback field. Go has no
// Python traceback; this says where the error came from, with the Go stack
// for panics.
func traceback(j *job, out *outcome) string {
	tb := fmt.Sprintf("Traceback (most recent call last):\n  celeriac task %q, id %s\n", j.name(), j.id())
	name := out.exc.Type
	if out.exc.Module != "" && out.exc.Module != "builtins" {
		name = out.exc.Module + "." + name
	}
	tb += name + ": " + out.exc.Text() + "\n"
	var pe *panicError
	if errors.As(out.err, &pe) {
		tb += "\nGo stack:\n" + string(pe.stack)
	}
	return tb
}
