package devmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/lock"
	"github.com/celeriac/celeriac/worker"

	// The embedded server speaks Redis: link the transport and the
	// result backend that use it.
	_ "github.com/celeriac/celeriac/backend/redis"
	_ "github.com/celeriac/celeriac/broker/redis"
)

// DefaultAddr is where the embedded server listens unless Config.Addr says
// otherwise. It is not Redis's 6379 so that dev mode can run beside a real
// Redis.
const DefaultAddr = "127.0.0.1:16379"

// Sentinel errors.
var (
	// ErrStarted is returned by Start when the server already runs.
	ErrStarted = errors.New("devmode: already started")
	// ErrNotStarted is returned by calls that need a running server.
	ErrNotStarted = errors.New("devmode: not started")
)

// Config configures a dev-mode Server.
type Config struct {
	// Addr is the embedded Redis-protocol server's listen address.
	// Default DefaultAddr; "127.0.0.1:0" picks a free port.
	Addr string
	// Queues the worker consumes. Default ["celery"].
	Queues []string
	// Concurrency is the worker's number of task slots. Default: the
	// worker's default.
	Concurrency int
	// Register adds a program's own tasks to the worker, after the
	// built-in ones (celeriac.noop, celeriac.add, …).
	Register func(w *worker.Worker) error
	// Schedule, if not empty, runs beat with these entries (see
	// beat.LoadFile), sending through the embedded broker.
	Schedule []beat.Entry
	// TaskEvents makes the worker send task events (for celery events).
	TaskEvents bool
	// Logger receives the worker's and server's logs. nil discards them.
	Logger *slog.Logger
}

// Server is the embedded system: Redis-protocol server, worker and,
// optionally, beat.
type Server struct {
	cfg Config

	mu       sync.Mutex
	mr       *miniredis.Miniredis
	b        broker.Broker
	rb       broker.ResultBackend
	locker   *lock.Locker
	w        *worker.Worker
	beat     *beat.Beat
	beatRDB  goredis.UniversalClient
	stopTick chan struct{}
	tickDone chan struct{}
}

// New checks cfg and applies defaults; Start runs the system.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("devmode: Config.Addr %q: %w", cfg.Addr, err)
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = []string{"celery"}
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("devmode: Config.Concurrency must not be negative, got %d", cfg.Concurrency)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg}, nil
}

// Start starts the embedded server, connects a worker to it and starts
// the worker (and beat, if configured). As with worker.Start, cancelling
// ctx stops consumption; Shutdown stops everything. On error everything
// started is stopped again.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mr != nil {
		return ErrStarted
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(s.cfg.Addr); err != nil {
		return fmt.Errorf("devmode: listen on Config.Addr %s: %w", s.cfg.Addr, err)
	}
	s.mr = mr
	s.startClock()
	defer func() {
		if err != nil {
			s.stopLocked(context.Background())
		}
	}()
	log := s.cfg.Logger
	url := s.brokerURLLocked()
	opts := broker.Options{Logger: log, Name: "celeriac-dev"}
	if s.b, err = broker.Open(ctx, url, opts); err != nil {
		return fmt.Errorf("devmode: broker: %w", err)
	}
	if s.rb, err = broker.OpenBackend(ctx, url, broker.BackendOptions{Options: opts, Broker: s.b}); err != nil {
		return fmt.Errorf("devmode: result backend: %w", err)
	}
	if c, ok := s.rb.(interface {
		Client() goredis.UniversalClient
	}); ok {
		if s.locker, err = lock.New(lock.Config{Clients: []goredis.UniversalClient{c.Client()}, Logger: log}); err != nil {
			return fmt.Errorf("devmode: locks: %w", err)
		}
	}
	var queues []broker.Queue
	for _, q := range s.cfg.Queues {
		queues = append(queues, broker.TaskQueue(q))
	}
	s.w, err = worker.New(worker.Config{
		Broker: s.b, Backend: s.rb, Locker: s.locker, Queues: queues,
		Concurrency: s.cfg.Concurrency, Hostname: "celeriac-dev@%h",
		TaskEvents: s.cfg.TaskEvents, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("devmode: worker: %w", err)
	}
	if err := worker.RegisterBuiltins(s.w); err != nil {
		return fmt.Errorf("devmode: worker: %w", err)
	}
	if s.cfg.Register != nil {
		if err := s.cfg.Register(s.w); err != nil {
			return fmt.Errorf("devmode: Config.Register: %w", err)
		}
	}
	if err := s.w.Start(ctx); err != nil {
		s.w = nil
		return fmt.Errorf("devmode: worker: %w", err)
	}
	if len(s.cfg.Schedule) > 0 {
		s.warnUnrunnable()
		if err := s.startBeat(ctx, url); err != nil {
			return err
		}
	}
	log.Info("dev mode running: not for production, everything is lost on exit",
		"CELERY_BROKER_URL", url, "CELERY_RESULT_BACKEND", url)
	return nil
}

// warnUnrunnable says which scheduled tasks this worker does not run: they
// fail as NotRegistered unless a Python worker on the same broker takes
// them first.
func (s *Server) warnUnrunnable() {
	known := map[string]bool{}
	for _, n := range s.w.TaskNames() {
		known[n] = true
	}
	for _, e := range s.cfg.Schedule {
		if !known[e.Task] {
			s.cfg.Logger.Warn("beat sends a task this worker does not run; register it, or run a Celery worker against the same URLs",
				"entry", e.Name, "task", e.Task)
		}
	}
}

// startBeat runs beat on the embedded server, through the worker's
// producer.
func (s *Server) startBeat(ctx context.Context, url string) error {
	rdb, err := redisurl.NewClient(url, redisurl.Options{ClientName: "celeriac-dev-beat"})
	if err != nil {
		return fmt.Errorf("devmode: beat: %w", err)
	}
	s.beatRDB = rdb
	if s.beat, err = beat.New(beat.Config{Producer: s.w.Producer(), Redis: rdb, Entries: s.cfg.Schedule, Logger: s.cfg.Logger}); err != nil {
		return fmt.Errorf("devmode: Config.Schedule: %w", err)
	}
	if err := s.beat.Start(ctx); err != nil {
		s.beat = nil
		return fmt.Errorf("devmode: beat: %w", err)
	}
	return nil
}

// startClock makes keys expire in real time: the embedded server only
// ages keys when told to, and leases, result expiry and kombu's
// visibility timeout all rely on TTLs.
func (s *Server) startClock() {
	s.stopTick = make(chan struct{})
	s.tickDone = make(chan struct{})
	go func(mr *miniredis.Miniredis, stop, done chan struct{}) {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				mr.SetTime(now)
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}(s.mr, s.stopTick, s.tickDone)
}

// BrokerURL is the URL a Celery client uses as CELERY_BROKER_URL.
func (s *Server) BrokerURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.brokerURLLocked()
}

// brokerURLLocked is BrokerURL for callers holding s.mu.
func (s *Server) brokerURLLocked() string {
	if s.mr == nil {
		return ""
	}
	return "redis://" + s.mr.Addr() + "/0"
}

// BackendURL is the URL a Celery client uses as CELERY_RESULT_BACKEND.
// Broker and results share the one embedded server, as they may with
// Redis.
func (s *Server) BackendURL() string { return s.BrokerURL() }

// Worker returns the running worker (for its HTTP handler or Producer),
// or nil before Start.
func (s *Server) Worker() *worker.Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w
}

// Shutdown stops beat, then the worker (warmly: running tasks finish
// unless ctx ends first), then the embedded server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mr == nil {
		return ErrNotStarted
	}
	return s.stopLocked(ctx)
}

func (s *Server) stopLocked(ctx context.Context) error {
	var errs []error
	if s.beat != nil {
		errs = append(errs, s.beat.Shutdown(ctx))
		s.beat = nil
	}
	if s.beatRDB != nil {
		errs = append(errs, s.beatRDB.Close())
		s.beatRDB = nil
	}
	if s.w != nil {
		errs = append(errs, s.w.Shutdown(ctx))
		s.w = nil
	}
	if s.locker != nil {
		errs = append(errs, s.locker.Close())
		s.locker = nil
	}
	if s.rb != nil {
		errs = append(errs, s.rb.Close())
		s.rb = nil
	}
	if s.b != nil {
		errs = append(errs, s.b.Close())
		s.b = nil
	}
	close(s.stopTick)
	<-s.tickDone
	s.mr.Close()
	s.mr = nil
	return errors.Join(errs...)
}
