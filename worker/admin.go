package worker

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// Queues lists the queues the worker consumes.
func (w *Worker) Queues() []broker.Queue {
	w.mu.Lock()
	c := w.consumer
	qs := append([]broker.Queue(nil), w.cfg.Queues...)
	w.mu.Unlock()
	if c != nil {
		return c.Queues()
	}
	return qs
}

// AddQueue starts consuming another queue at run time (remote control's
// add_consumer).
func (w *Worker) AddQueue(ctx context.Context, q broker.Queue) error {
	w.mu.Lock()
	c := w.consumer
	w.mu.Unlock()
	if c == nil {
		return ErrWorkerClosed
	}
	for _, have := range c.Queues() {
		if have.Name == q.Name {
			return nil
		}
	}
	return c.AddQueue(ctx, q)
}

// CancelQueue stops consuming a queue at run time (cancel_consumer).
func (w *Worker) CancelQueue(ctx context.Context, name string) error {
	w.mu.Lock()
	c := w.consumer
	w.mu.Unlock()
	if c == nil {
		return ErrWorkerClosed
	}
	return c.CancelQueue(ctx, name)
}

// SetTimeLimits changes a task's default soft and hard time limits at run
// time (remote control's time_limit).
func (w *Worker) SetTimeLimits(name string, soft, hard time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.tasks[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotRegistered, name)
	}
	r.limitsMu.Lock()
	r.softLimit, r.hardLimit = soft, hard
	r.limitsMu.Unlock()
	return nil
}

// ShutdownRequested is closed when remote control asks the worker to shut
// down (`celery control shutdown`). The program owning the worker decides
// what to do; celeriac's CLI shuts down warmly and exits.
func (w *Worker) ShutdownRequested() <-chan struct{} { return w.shutdownReq }

func (w *Worker) requestShutdown() {
	w.shutdownOnce.Do(func() { close(w.shutdownReq) })
}

// activeCount is how many tasks are running now.
func (w *Worker) activeCount() int {
	n := 0
	w.active.Range(func(_, _ any) bool { n++; return true })
	return n
}

// stats is the reply to `celery inspect stats`, in Celery's shape.
func (w *Worker) stats() map[string]any {
	total := map[string]any{}
	w.totals.Range(func(k, v any) bool { total[k.(string)] = v.(*counter).n.Load(); return true })
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return map[string]any{
		"total":  total,
		"pid":    os.Getpid(),
		"clock":  fmt.Sprint(w.events.clock.v.Load()),
		"uptime": int64(w.now().Sub(w.startedAt).Seconds()),
		"pool": map[string]any{
			"implementation": "celeriac:goroutines", "max-concurrency": w.cfg.Concurrency,
			"processes": []any{os.Getpid()}, "max-tasks-per-child": nil, "put-guarded-by-semaphore": false,
			"timeouts": []any{0, 0}, "writes": map[string]any{},
		},
		"broker":         map[string]any{"transport": fmt.Sprintf("%T", w.cfg.Broker)},
		"prefetch_count": w.pf.applied.Load(),
		"rusage": map[string]any{
			"utime": tv(ru.Utime), "stime": tv(ru.Stime), "maxrss": ru.Maxrss, "minflt": ru.Minflt,
			"majflt": ru.Majflt, "nvcsw": ru.Nvcsw, "nivcsw": ru.Nivcsw, "inblock": ru.Inblock, "oublock": ru.Oublock,
		},
		"sw_ident": "celeriac", "sw_ver": Version,
		"held_eta": w.eta.len(), "parked_eta": w.parked.Load(), "events_dropped": w.events.dropped.Load(),
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
