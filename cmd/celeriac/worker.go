package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/worker"
)

func init() {
	register("worker", "consume Celery task messages and run Go tasks", runWorker)
}

// workerFlags are celeriac worker's flags, named as Celery's.
type workerFlags struct {
	conn             connFlags
	queues           string
	concurrency      int
	prefetch         int
	hostname         string
	trackStarted     bool
	resultExtended   bool
	maxPriority      int
	shutdownTimeout  time.Duration
	storeErrsIgnored bool
}

func (f *workerFlags) parse(e *env, args []string) error {
	fs := newFlagSet(e, "worker", "[flags]")
	f.conn.register(fs, e)
	for _, n := range []string{"Q", "queues"} {
		fs.StringVar(&f.queues, n, "celery", "comma-separated queues to consume")
	}
	for _, n := range []string{"c", "concurrency"} {
		fs.IntVar(&f.concurrency, n, runtime.NumCPU(), "tasks run at once")
	}
	fs.IntVar(&f.prefetch, "prefetch-multiplier", 4, "unacknowledged messages per concurrency slot")
	for _, n := range []string{"n", "hostname"} {
		fs.StringVar(&f.hostname, n, "celeriac@%h", "node name (%h host, %n short host, %d domain, %i pid)")
	}
	fs.BoolVar(&f.trackStarted, "track-started", false, "store STARTED before each task runs (task_track_started)")
	fs.BoolVar(&f.resultExtended, "result-extended", false, "store name, args, kwargs, worker, retries and queue with results (result_extended)")
	fs.BoolVar(&f.storeErrsIgnored, "store-errors-even-if-ignored", false, "store failures of tasks whose results are ignored")
	fs.IntVar(&f.maxPriority, "max-priority", 0, "declare queues with x-max-priority (0: none), as the Celery side's task_queue_max_priority")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 0, "on SIGTERM, wait this long for running tasks before cancelling them (0: wait until they finish)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "celeriac worker: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if f.concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", f.concurrency)
	}
	if f.prefetch < 1 {
		return fmt.Errorf("--prefetch-multiplier must be at least 1, got %d", f.prefetch)
	}
	if f.maxPriority < 0 || f.maxPriority > 255 {
		return fmt.Errorf("--max-priority must be 0..255, got %d", f.maxPriority)
	}
	if len(splitList(f.queues)) == 0 {
		return errors.New("--queues is empty")
	}
	return nil
}

// queueDecls are the queues to consume, declared as the Celery side does.
func (f *workerFlags) queueDecls() []broker.Queue {
	var qs []broker.Queue
	for _, name := range splitList(f.queues) {
		q := broker.TaskQueue(name)
		if f.maxPriority > 0 {
			q = q.WithArgs(map[string]any{"x-max-priority": f.maxPriority})
		}
		qs = append(qs, q)
	}
	return qs
}

func runWorker(ctx context.Context, e *env, args []string) error {
	var f workerFlags
	if err := f.parse(e, args); err != nil {
		return err
	}
	log, err := f.conn.logger(e.stderr)
	if err != nil {
		return err
	}
	host, err := worker.ExpandHostname(f.hostname)
	if err != nil {
		return err
	}
	b, rb, err := f.conn.open(ctx, log, host)
	if err != nil {
		return err
	}
	defer b.Close()
	if rb != nil {
		defer rb.Close()
	}
	w, err := worker.New(worker.Config{
		Broker: b, Backend: rb, Queues: f.queueDecls(), Concurrency: f.concurrency,
		PrefetchMultiplier: f.prefetch, Hostname: host, TrackStarted: f.trackStarted,
		ResultExtended: f.resultExtended, StoreErrorsEvenIfIgnored: f.storeErrsIgnored,
		Serializer: f.conn.serializer, DefaultQueue: f.conn.defaultQ, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		return err
	}
	if err := registerExtraTasks(w); err != nil {
		return err
	}
	if rb == nil {
		log.Info("no result backend configured: results are not stored")
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("warm shutdown: finishing running tasks (send the signal again to stop now)")
	sctx := context.Background()
	if f.shutdownTimeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(sctx, f.shutdownTimeout)
		defer cancel()
	}
	return w.Shutdown(sctx)
}

// registerExtraTasks is where a program embedding this CLI adds its tasks.
var registerExtraTasks = func(w *worker.Worker) error { return nil }
