package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/clock"
	"github.com/celeriac/celeriac/lock"
	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors.
var (
	// ErrWorkerClosed is returned by Start and Shutdown after Shutdown.
	ErrWorkerClosed = errors.New("worker: closed")
	// ErrStarted is returned by Start and Register once the worker runs.
	ErrStarted = errors.New("worker: already started")
	// ErrNotRegistered is the error of a message naming an unknown task.
	ErrNotRegistered = errors.New("worker: task not registered")
)

// DefaultConcurrency is the number of task slots a worker has unless told
// otherwise: 4 per CPU, at least 8. Celery's prefork default is one
// process per CPU; a Go worker's slots are goroutines, and tasks that wait
// on the network (including the result backend and the exactly-once
// guard's round trips) overlap instead of leaving CPUs idle.
func DefaultConcurrency() int { return max(8, 4*runtime.NumCPU()) }

// Config configures a Worker. The zero value of each optional field means
// Celery's default.
type Config struct {
	// Broker delivers task messages. Required.
	Broker broker.Broker
	// Backend stores results; nil runs without storing any (like Celery
	// with no result_backend).
	Backend broker.ResultBackend
	// Queues to consume. Default: Celery's "celery" queue.
	Queues []broker.Queue
	// Concurrency is how many tasks run at once. Default
	// DefaultConcurrency().
	Concurrency int
	// PrefetchMultiplier: unacknowledged messages in flight are
	// Concurrency × PrefetchMultiplier. Default 4.
	PrefetchMultiplier int
	// Hostname is the node name, as Celery's -n: "celeriac@%h" by default;
	// %h, %n, %d and %i expand to the host name, its first label, its
	// domain and the process id.
	Hostname string
	// TrackStarted writes STARTED before a task runs (task_track_started).
	TrackStarted bool
	// ResultExtended adds name, args, kwargs, worker, retries and queue to
	// stored results (result_extended).
	ResultExtended bool
	// StoreErrorsEvenIfIgnored stores FAILURE for tasks whose results are
	// ignored (task_store_errors_even_if_ignored).
	StoreErrorsEvenIfIgnored bool
	// DefaultQueue is where tasks the worker sends (callbacks, chain links)
	// go when neither their options nor Routes say otherwise: Celery's
	// task_default_queue, "celery" by default.
	DefaultQueue string
	// Routes route the tasks the worker sends, like Celery's task_routes.
	Routes []broker.Route
	// Serializer for messages the worker sends (retries, callbacks):
	// "json" (default) or "msgpack".
	Serializer string
	// ETAHoldHorizon: a task whose ETA is further away than this is parked
	// in the broker (see PublishAt) rather than held in worker memory.
	// Default 30 s.
	ETAHoldHorizon time.Duration
	// ETAHoldLimit bounds how many ETA tasks are held in memory; beyond it
	// new ones are parked even inside the horizon. Default 10,000.
	ETAHoldLimit int
	// Locker turns on the exactly-once guard (see guard.go), keeping task
	// leases and done marks in its Redis servers: the result backend's, or
	// several independent masters for Redlock. nil runs unguarded, which
	// Start logs once.
	Locker *lock.Locker
	// GuardLease is a task's lease length, renewed every third of it while
	// the task runs; a crashed worker's task is runnable again this long
	// after the crash. Default 15 s.
	GuardLease time.Duration
	// GuardWindow is how long a task id stays marked done. Default 24 h.
	GuardWindow time.Duration
	// Revoked persists revocations; nil uses the Backend if it is a
	// RevokedStore (the Redis backend is), else memory only.
	Revoked RevokedStore
	// TaskEvents sends task-* events (Celery's -E / worker_send_task_events);
	// they can also be switched on at run time by remote control.
	TaskEvents bool
	// HeartbeatInterval is how often worker-heartbeat is sent. Default 2 s
	// (Celery's); negative disables heartbeats (--without-heartbeat).
	HeartbeatInterval time.Duration
	// WithoutControl disables remote control (the pidbox consumer).
	WithoutControl bool
	// Registry receives the worker's Prometheus metrics; nil creates one
	// (with Go runtime and process metrics) served by HTTPHandler.
	Registry *prometheus.Registry
	// Logger receives one line per task outcome and worker events; nil
	// discards.
	Logger *slog.Logger
	// Clock is the time source; nil is the system clock. Tests inject a
	// fake one to move through countdowns without waiting.
	Clock clock.Clock
}

// Worker consumes Celery task messages and runs registered Go handlers.
type Worker struct {
	cfg      Config
	peek     statePeeker   // nil unless the backend shares the guard's Redis
	fuse     storeReleaser // likewise
	log      *slog.Logger
	clock    clock.Clock
	hostname string
	producer *broker.Producer

	mu       sync.Mutex
	tasks    map[string]*registered
	state    int // stateNew, stateRunning, stateStopping, stateClosed
	consumer broker.Consumer
	runq     *runQueue
	eta      *etaHolder
	pf       prefetcher
	rates    *rateLimits
	revoked  *revokedSet
	obs      observers

	revokedStore RevokedStore
	events       *events
	control      *control
	totals       sync.Map // task name -> *counter
	startedAt    time.Time
	shutdownReq  chan struct{}
	shutdownOnce sync.Once
	metrics      *metrics
	gatherer     prometheus.Gatherer

	wg       sync.WaitGroup // consume loop and pool goroutines
	tasksWG  sync.WaitGroup // every handler goroutine, abandoned ones included
	active   sync.Map       // task id -> *job, running now
	inflight atomic.Int64   // jobs received and not yet settled
	taskCtx  context.Context
	killAll  context.CancelFunc // cancels every task context (forced shutdown)
	stopped  chan struct{}      // closed when consuming has stopped

	processed atomic.Int64
	parked    atomic.Int64
	random    func(n int64) int64 // [0, n); jitter
}

const (
	stateNew = iota
	stateRunning
	stateStopping
	stateClosed
)

// New validates cfg, applies defaults and returns a Worker. Register
// handlers, then call Start.
func New(cfg Config) (*Worker, error) {
	if cfg.Broker == nil {
		return nil, errors.New("worker: Config.Broker is required")
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("worker: Config.Concurrency must be positive, got %d", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency()
	}
	if cfg.PrefetchMultiplier < 0 {
		return nil, fmt.Errorf("worker: Config.PrefetchMultiplier must not be negative, got %d", cfg.PrefetchMultiplier)
	}
	if cfg.PrefetchMultiplier == 0 {
		cfg.PrefetchMultiplier = 4
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []broker.Queue{broker.TaskQueue("celery")}
	}
	for i, q := range cfg.Queues {
		if q.Name == "" {
			return nil, fmt.Errorf("worker: Config.Queues[%d] has no name", i)
		}
	}
	switch cfg.Serializer {
	case "":
		cfg.Serializer = broker.SerializerJSON
	case broker.SerializerJSON, broker.SerializerMsgpack:
	default:
		return nil, fmt.Errorf("worker: Config.Serializer %q: use json or msgpack", cfg.Serializer)
	}
	if cfg.GuardLease < 0 || cfg.GuardWindow < 0 {
		return nil, errors.New("worker: Config.GuardLease and Config.GuardWindow must not be negative")
	}
	if cfg.GuardLease == 0 {
		cfg.GuardLease = 15 * time.Second
	}
	if cfg.GuardLease < time.Second {
		return nil, fmt.Errorf("worker: Config.GuardLease %v is too short (minimum 1s)", cfg.GuardLease)
	}
	if cfg.GuardWindow == 0 {
		cfg.GuardWindow = 24 * time.Hour
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.HeartbeatInterval < 0 {
		cfg.HeartbeatInterval = 0
	}
	if cfg.ETAHoldHorizon < 0 || cfg.ETAHoldLimit < 0 {
		return nil, errors.New("worker: Config.ETAHoldHorizon and Config.ETAHoldLimit must not be negative")
	}
	if cfg.ETAHoldHorizon == 0 {
		cfg.ETAHoldHorizon = 30 * time.Second
	}
	if cfg.ETAHoldLimit == 0 {
		cfg.ETAHoldLimit = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	host, err := ExpandHostname(cfg.Hostname)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:         cfg,
		log:         cfg.Logger.With(slog.String("worker", host)),
		clock:       cfg.Clock,
		hostname:    host,
		tasks:       map[string]*registered{},
		rates:       newRateLimits(),
		revoked:     newRevokedSet(),
		random:      rand.Int64N,
		stopped:     make(chan struct{}),
		pf:          prefetcher{kick: make(chan struct{}, 1)},
		shutdownReq: make(chan struct{}),
	}
	w.producer, err = broker.NewProducer(broker.ProducerConfig{
		Broker: cfg.Broker, Backend: cfg.Backend, Serializer: cfg.Serializer,
		DefaultQueue: cfg.DefaultQueue, Routes: cfg.Routes, Queues: queueMap(cfg.Queues),
		Logger: cfg.Logger, Now: w.clock.Now,
	})
	if err != nil {
		return nil, err
	}
	w.events = newEvents(w)
	reg := cfg.Registry
	if reg == nil {
		reg = defaultRegistry()
	}
	w.gatherer = reg
	w.runq = newRunQueue(w)
	w.eta = newETAHolder(w)
	w.metrics = newMetrics(w, reg)
	w.peek, w.fuse = guardBackendFor(cfg)
	w.obs = observers{&logObserver{log: w.log}, eventObserver{w.events}, totalsObserver{w}, metricsObserver{w.metrics}}
	w.revokedStore = cfg.Revoked
	if rs, ok := cfg.Backend.(RevokedStore); ok && w.revokedStore == nil {
		w.revokedStore = rs
	}
	return w, nil
}

func queueMap(qs []broker.Queue) map[string]broker.Queue {
	m := make(map[string]broker.Queue, len(qs))
	for _, q := range qs {
		m[q.Name] = q
	}
	return m
}

// ExpandHostname expands Celery's node-name placeholders: %h (host name),
// %n (its first label), %d (its domain), %i (process id) and %%.
func ExpandHostname(pattern string) (string, error) {
	if pattern == "" {
		pattern = "celeriac@%h"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	short, domain, _ := strings.Cut(host, ".")
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' || i+1 == len(pattern) {
			b.WriteByte(c)
			continue
		}
		i++
		switch pattern[i] {
		case 'h':
			b.WriteString(host)
		case 'n':
			b.WriteString(short)
		case 'd':
			b.WriteString(domain)
		case 'i':
			fmt.Fprint(&b, os.Getpid())
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("worker: Config.Hostname %q: unknown placeholder %%%c", pattern, pattern[i])
		}
	}
	if !strings.Contains(b.String(), "@") {
		return "celeriac@" + b.String(), nil
	}
	return b.String(), nil
}

// Hostname returns the worker's node name.
func (w *Worker) Hostname() string { return w.hostname }

// Producer returns the worker's producer, for handlers that send tasks.
func (w *Worker) Producer() *broker.Producer { return w.producer }

func (w *Worker) prefetch() int {
	return w.cfg.Concurrency * w.cfg.PrefetchMultiplier
}

// Start declares the queues and starts consuming. It returns once the
// consumer is running; tasks run until Shutdown. Cancelling ctx stops
// consumption (messages already received still run); call Shutdown to
// wait for them.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	switch w.state {
	case stateRunning:
		w.mu.Unlock()
		return ErrStarted
	case stateStopping, stateClosed:
		w.mu.Unlock()
		return ErrWorkerClosed
	}
	w.state = stateRunning
	w.mu.Unlock()

	w.startedAt = w.now()
	if w.cfg.Locker == nil {
		w.log.Warn("exactly-once guard off: no Redis for leases is configured; redelivered messages may run twice")
	}
	w.loadRevoked(ctx)
	if !w.cfg.WithoutControl {
		w.control = &control{w: w}
		if err := w.control.start(ctx); err != nil {
			w.mu.Lock()
			w.state = stateClosed
			w.mu.Unlock()
			return fmt.Errorf("worker: start remote control: %w", err)
		}
	}
	c, err := w.cfg.Broker.Consume(ctx, broker.ConsumeOptions{
		Queues: w.cfg.Queues, Prefetch: w.prefetch(), Tag: w.hostname,
	})
	if err != nil {
		if w.control != nil {
			w.control.stop()
		}
		w.mu.Lock()
		w.state = stateClosed
		w.mu.Unlock()
		return fmt.Errorf("worker: start consuming: %w", err)
	}
	w.events.start(ctx)
	w.taskCtx, w.killAll = context.WithCancel(context.Background())
	w.mu.Lock()
	w.consumer = c
	w.mu.Unlock()

	for range w.cfg.Concurrency {
		w.wg.Add(1)
		go w.poolLoop()
	}
	w.wg.Add(1)
	go w.consumeLoop(c)
	w.pf.applied.Store(int64(w.prefetch()))
	w.wg.Add(1)
	go w.prefetchLoop(c)

	// A cancelled ctx is a soft stop: no new messages.
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case <-ctx.Done():
			w.stopConsuming()
		case <-w.stopped:
		}
	}()
	names := make([]string, 0, len(w.cfg.Queues))
	for _, q := range w.cfg.Queues {
		names = append(names, q.Name)
	}
	w.log.Info("worker ready", "queues", names, "concurrency", w.cfg.Concurrency,
		"prefetch", w.prefetch(), "tasks", w.TaskNames())
	return nil
}

// stopConsuming cancels the broker consumer once.
func (w *Worker) stopConsuming() {
	w.mu.Lock()
	c := w.consumer
	w.consumer = nil
	w.mu.Unlock()
	if c != nil {
		_ = c.Cancel(context.Background())
	}
}

// Shutdown stops consuming, returns prefetched and held messages to the
// broker, waits for running tasks to finish and be acknowledged, and
// returns. If ctx ends first it cancels the running tasks' contexts, still
// waits for them, and returns ctx.Err(). Later calls return ErrWorkerClosed.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	switch w.state {
	case stateNew:
		w.state = stateClosed
		w.mu.Unlock()
		return nil
	case stateStopping, stateClosed:
		w.mu.Unlock()
		return ErrWorkerClosed
	}
	w.state = stateStopping
	w.mu.Unlock()

	w.stopConsuming()
	close(w.stopped)
	w.eta.stop()
	w.rates.stop(w)
	w.runq.close()

	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		w.tasksWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		w.log.Warn("shutdown deadline reached: cancelling running tasks")
		w.killAll()
		<-done
	}
	w.killAll()
	if w.control != nil {
		w.control.stop()
	}
	w.events.shutdown()
	w.mu.Lock()
	w.state = stateClosed
	w.mu.Unlock()
	w.log.Info("worker stopped", "processed", w.processed.Load())
	return err
}

// Processed is the number of tasks this worker has finished.
func (w *Worker) Processed() int64 { return w.processed.Load() }

// now is the worker's clock.
func (w *Worker) now() time.Time { return w.clock.Now() }
