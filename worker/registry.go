package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// registered is a task name with its handler and per-task options.
type registered struct {
	limitsMu     sync.Mutex // softLimit, hardLimit change at run time
	name         string
	h            Handler
	ackEarly     bool
	ignoreResult bool
	trackStarted *bool
	softLimit    time.Duration
	hardLimit    time.Duration
	maxRetries   *int // nil: Celery's default 3; negative: unlimited
	retryDelay   time.Duration
	rateLimit    string
	autoRetry    *AutoRetryPolicy
	unguarded    bool
}

// Unguarded runs the task without the exactly-once guard: cheaper, for
// tasks that are idempotent anyway.
func Unguarded() TaskOption {
	return func(r *registered) error { r.unguarded = true; return nil }
}

// TaskOption sets a per-task option at registration.
type TaskOption func(*registered) error

// AckEarly acknowledges the message just before the task runs (Celery's
// default, acks_late=False) instead of after it finishes. A worker crash
// during such a task loses it rather than running it again.
func AckEarly() TaskOption {
	return func(r *registered) error { r.ackEarly = true; return nil }
}

// IgnoreResult never stores the task's SUCCESS result (ignore_result=True).
func IgnoreResult() TaskOption {
	return func(r *registered) error { r.ignoreResult = true; return nil }
}

// TrackStarted overrides Config.TrackStarted for this task.
func TrackStarted(on bool) TaskOption {
	return func(r *registered) error { r.trackStarted = &on; return nil }
}

// TimeLimits sets the task's default soft and hard time limits (0 = none);
// a message's timelimit header overrides them. At the soft limit the task's
// context is cancelled with ErrSoftTimeLimit; at the hard limit the task is
// failed with TimeLimitExceeded and its slot freed.
func TimeLimits(soft, hard time.Duration) TaskOption {
	return func(r *registered) error {
		if soft < 0 || hard < 0 {
			return fmt.Errorf("time limits must not be negative")
		}
		if soft > 0 && hard > 0 && soft >= hard {
			return fmt.Errorf("soft time limit %v must be below the hard limit %v", soft, hard)
		}
		r.softLimit, r.hardLimit = soft, hard
		return nil
	}
}

// MaxRetries bounds Retry for this task (Celery's max_retries, default 3);
// a negative n retries forever.
func MaxRetries(n int) TaskOption {
	return func(r *registered) error { r.maxRetries = &n; return nil }
}

// DefaultRetryDelay is the countdown of a Retry that gives none (Celery's
// default_retry_delay, 180 s).
func DefaultRetryDelay(d time.Duration) TaskOption {
	return func(r *registered) error {
		if d < 0 {
			return fmt.Errorf("retry delay must not be negative")
		}
		r.retryDelay = d
		return nil
	}
}

// Register adds a handler for a Celery task name ("tasks.add"). Register
// before Start; registering a name twice is an error.
func (w *Worker) Register(name string, h Handler, opts ...TaskOption) error {
	if name == "" {
		return errors.New("worker: Register: empty task name")
	}
	if h == nil {
		return fmt.Errorf("worker: Register %q: nil handler", name)
	}
	r := &registered{name: name, h: h, retryDelay: 180 * time.Second}
	for _, o := range opts {
		if err := o(r); err != nil {
			return fmt.Errorf("worker: Register %q: %w", name, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != stateNew {
		return ErrStarted
	}
	if _, dup := w.tasks[name]; dup {
		return fmt.Errorf("worker: task %q registered twice", name)
	}
	if r.rateLimit != "" {
		if err := w.rates.set(name, r.rateLimit); err != nil {
			return err
		}
	}
	w.tasks[name] = r
	return nil
}

// MustRegister is Register that panics on error, for program set-up.
func (w *Worker) MustRegister(name string, h Handler, opts ...TaskOption) {
	if err := w.Register(name, h, opts...); err != nil {
		panic(err)
	}
}

// TaskNames lists the registered task names, sorted.
func (w *Worker) TaskNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.tasks))
	for n := range w.tasks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (w *Worker) lookup(name string) *registered {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks[name]
}

// Request describes the task a handler is running; get it with
// RequestFrom(ctx).
type Request struct {
	*broker.Task
	// Hostname is the worker's node name.
	Hostname string
	// Queue the message was consumed from, and whether the broker had
	// delivered it before.
	Queue       string
	Redelivered bool
	// Worker is the worker running the task (to send tasks from inside a
	// handler through Worker.Producer()).
	Worker *Worker
	// FencingToken is the task lease's fencing token under the
	// exactly-once guard (0 when unguarded): larger than any token issued
	// before for this task id. Store it with what the task writes and
	// refuse writes carrying a smaller one.
	FencingToken uint64
}

type requestKey struct{}

// RequestFrom returns the request of the task running with ctx, or nil
// outside a task.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}
