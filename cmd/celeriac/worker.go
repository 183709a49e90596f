package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/lock"
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
	taskEvents       bool
	withoutHeartbeat bool
	heartbeat        time.Duration
	httpAddr         string
	lockURLs         string
	withoutGuard     bool
	guardLease       time.Duration
}

func (f *workerFlags) parse(e *env, args []string) error {
	fs := newFlagSet(e, "worker", "[flags]")
	f.conn.register(fs, e)
	for _, n := range []string{"Q", "queues"} {
		fs.StringVar(&f.queues, n, "celery", "comma-separated queues to consume")
	}
	for _, n := range []string{"c", "concurrency"} {
		fs.IntVar(&f.concurrency, n, worker.DefaultConcurrency(), "tasks run at once (goroutines)")
	}
	fs.IntVar(&f.prefetch, "prefetch-multiplier", 4, "unacknowledged messages per concurrency slot")
	for _, n := range []string{"n", "hostname"} {
		fs.StringVar(&f.hostname, n, "celeriac@%h", "node name (%h host, %n short host, %d domain, %i pid)")
	}
	fs.BoolVar(&f.trackStarted, "track-started", false, "store STARTED before each task runs (task_track_started)")
	fs.BoolVar(&f.resultExtended, "result-extended", false, "store name, args, kwargs, worker, retries and queue with results (result_extended)")
	fs.BoolVar(&f.storeErrsIgnored, "store-errors-even-if-ignored", false, "store failures of tasks whose results are ignored")
	fs.IntVar(&f.maxPriority, "max-priority", 0, "declare queues with x-max-priority (0: none), as the Celery side's task_queue_max_priority")
	for _, n := range []string{"E", "task-events"} {
		fs.BoolVar(&f.taskEvents, n, false, "send task events (for Flower, celery events, exporters)")
	}
	fs.BoolVar(&f.withoutHeartbeat, "without-heartbeat", false, "send no worker-heartbeat events")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", 2*time.Second, "interval of worker-heartbeat events")
	fs.StringVar(&f.httpAddr, "http", "", "serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9808 (off when empty)")
	fs.StringVar(&f.lockURLs, "lock-url", "", "Redis for the exactly-once guard's leases: one URL, or several independent masters separated by ',' for Redlock (default: the result backend's Redis)")
	fs.BoolVar(&f.withoutGuard, "without-guard", false, "run without the exactly-once guard")
	fs.DurationVar(&f.guardLease, "guard-lease", 15*time.Second, "exactly-once lease length; a crashed worker's task is runnable again after it")
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
	reg := worker.NewRegistry()
	f.conn.hooks = worker.ConnectionHooks(reg)
	b, rb, err := f.conn.open(ctx, log, host)
	if err != nil {
		return err
	}
	defer b.Close()
	if rb != nil {
		defer rb.Close()
	}
	locker, err := f.locker(rb, log)
	if err != nil {
		return err
	}
	if locker != nil {
		defer locker.Close()
	}
	hb := f.heartbeat
	if f.withoutHeartbeat {
		hb = -1
	}
	w, err := worker.New(worker.Config{
		TaskEvents: f.taskEvents, HeartbeatInterval: hb, Locker: locker, GuardLease: f.guardLease,
		Broker: b, Backend: rb, Queues: f.queueDecls(), Concurrency: f.concurrency,
		PrefetchMultiplier: f.prefetch, Hostname: host, TrackStarted: f.trackStarted,
		ResultExtended: f.resultExtended, StoreErrorsEvenIfIgnored: f.storeErrsIgnored,
		Serializer: f.conn.serializer, DefaultQueue: f.conn.defaultQ, Logger: log, Registry: reg,
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
	stopHTTP, err := serveHTTP(f.httpAddr, w.HTTPHandler(), log)
	if err != nil {
		_ = w.Shutdown(context.Background())
		return err
	}
	defer stopHTTP()
	select {
	case <-ctx.Done():
	case <-w.ShutdownRequested():
	}
	log.Info("warm shutdown: finishing running tasks (send the signal again to stop now)")
	sctx := context.Background()
	if f.shutdownTimeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(sctx, f.shutdownTimeout)
		defer cancel()
	}
	return w.Shutdown(sctx)
}

// locker builds the exactly-once guard's lock store: --lock-url, else the
// Redis result backend's connection, else none (the worker says so).
func (f *workerFlags) locker(rb broker.ResultBackend, log *slog.Logger) (*lock.Locker, error) {
	if f.withoutGuard {
		return nil, nil
	}
	if urls := splitList(strings.ReplaceAll(f.lockURLs, ";", ",")); len(urls) > 0 {
		l, err := lock.New(lock.Config{URLs: urls, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--lock-url: %w", err)
		}
		return l, nil
	}
	if c, ok := rb.(interface {
		Client() goredis.UniversalClient
	}); ok {
		return lock.New(lock.Config{Clients: []goredis.UniversalClient{c.Client()}, Logger: log})
	}
	return nil, nil
}

// serveHTTP serves h on addr until the returned stop function is called.
// An empty addr serves nothing.
func serveHTTP(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err)
		}
	}()
	log.Info("serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// registerExtraTasks is where a program embedding this CLI adds its tasks.
var registerExtraTasks = func(w *worker.Worker) error { return nil }
