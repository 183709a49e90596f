package beat

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/clock"
	"github.com/celeriac/celeriac/lock"
	goredis "github.com/redis/go-redis/v9"
)

// CatchUp says what beat does with runs it missed (no leader was up, or
// the schedule came due while beat was stopped).
type CatchUp int

const (
	// CatchUpRunOnce runs a missed entry once, now, however many periods
	// were missed, then follows its schedule from now (Celery's behaviour).
	CatchUpRunOnce CatchUp = iota
	// CatchUpSkip drops runs missed by more than Config.LeaseTTL and waits
	// for the next due time; runs delayed by a failover still happen.
	CatchUpSkip
)

// Config configures a Beat. Zero fields take the defaults shown.
type Config struct {
	// Producer sends the task messages. Required.
	Producer *broker.Producer
	// Redis keeps the run history and the leader lease. Required.
	Redis goredis.UniversalClient
	// Prefix is prepended to beat's Redis keys. Default "celeriac:beat:".
	Prefix string
	// Name identifies the schedule: beats with the same Name and Redis
	// elect one leader among them. Default "default".
	Name string
	// Entries is the static schedule.
	Entries []Entry
	// Source supplies more entries and is polled for changes; optional.
	Source Source
	// SyncInterval is how often the leader polls Source. Default 5 s.
	SyncInterval time.Duration
	// LeaseTTL is the leader lease: a dead leader's successor takes over
	// within it. Default 10 s.
	LeaseTTL time.Duration
	// CatchUp is the policy for missed runs. Default CatchUpRunOnce.
	CatchUp CatchUp
	// MaxLoopInterval caps how long the leader sleeps between checks.
	// Default 5 min.
	MaxLoopInterval time.Duration
	// PublishConcurrency bounds concurrent sends. Default 16.
	PublishConcurrency int
	// Logger; nil discards.
	Logger *slog.Logger
	// Clock; nil is the real clock. Leases always run on real time (Redis
	// expires them), the schedule runs on Clock.
	Clock clock.Clock
	// OnDispatch, if set, is called after each message is sent.
	OnDispatch func(d Dispatch)
}

// Dispatch describes one sent run.
type Dispatch struct {
	Entry  string
	TaskID string
	Due    time.Time // when it was due
	Sent   time.Time // when it was sent (Clock time)
}

// Beat is a periodic task scheduler; several may run against one Redis and
// only the leader dispatches.
type Beat struct {
	cfg    Config
	log    *slog.Logger
	clk    clock.Clock
	st     *store
	locker *lock.Locker

	mu      sync.Mutex
	entries map[string]*item
	queue   itemHeap
	srcVer  string
	closed  bool
	started bool

	wake chan struct{}
	// testIdle, when set by tests, is called each time the leader has
	// dispatched everything due at now and is about to wait.
	testIdle func(now time.Time)
	leader   atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type item struct {
	e       Entry
	last    time.Time
	lastRaw string // as stored in Redis ("" if not yet)
	next    time.Time
	index   int // in the heap; -1 when not queued
	origin  origin
}

// origin is where an entry came from: a source reload replaces only its own.
type origin int

const (
	fromConfig origin = iota
	fromAPI
	fromSource
)

// New checks cfg and returns a Beat; it does not contact Redis.
func New(cfg Config) (*Beat, error) {
	if cfg.Producer == nil {
		return nil, errors.New("beat: Config.Producer is required")
	}
	if cfg.Redis == nil {
		return nil, errors.New("beat: Config.Redis is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "celeriac:beat:"
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if strings.ContainsAny(cfg.Prefix+cfg.Name, "{}") {
		return nil, fmt.Errorf("beat: Config.Prefix and Config.Name must not contain braces: %q %q", cfg.Prefix, cfg.Name)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	if cfg.LeaseTTL < 100*time.Millisecond {
		return nil, fmt.Errorf("beat: Config.LeaseTTL %v is too short (minimum 100ms)", cfg.LeaseTTL)
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 5 * time.Second
	}
	if cfg.MaxLoopInterval <= 0 {
		cfg.MaxLoopInterval = 5 * time.Minute
	}
	if cfg.PublishConcurrency <= 0 {
		cfg.PublishConcurrency = 16
	}
	if cfg.CatchUp != CatchUpRunOnce && cfg.CatchUp != CatchUpSkip {
		return nil, fmt.Errorf("beat: Config.CatchUp %d is not a policy", cfg.CatchUp)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	locker, err := lock.New(lock.Config{
		Clients: []goredis.UniversalClient{cfg.Redis}, Prefix: cfg.Prefix, Expiry: cfg.LeaseTTL,
		RetryDelay: min(cfg.LeaseTTL/10, 250*time.Millisecond),
		// Tokens must never restart below the fence beat keeps.
		TokenTTL: -1, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("beat: %w", err)
	}
	b := &Beat{
		cfg: cfg, log: cfg.Logger.With("beat", cfg.Name), clk: cfg.Clock,
		st: newStore(cfg.Redis, cfg.Prefix, cfg.Name), locker: locker,
		entries: map[string]*item{}, wake: make(chan struct{}, 1),
	}
	for i := range cfg.Entries {
		if err := cfg.Entries[i].validate(); err != nil {
			return nil, fmt.Errorf("beat: Config.Entries[%d]: %w", i, err)
		}
		if _, dup := b.entries[cfg.Entries[i].Name]; dup {
			return nil, fmt.Errorf("beat: Config.Entries[%d]: %w: duplicate name %q", i, ErrInvalidEntry, cfg.Entries[i].Name)
		}
		b.entries[cfg.Entries[i].Name] = &item{e: cfg.Entries[i], index: -1, origin: fromConfig}
	}
	return b, nil
}

// Start runs the beat until ctx ends or Shutdown: it waits for the leader
// lease and, while it holds it, dispatches due entries.
func (b *Beat) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return errors.New("beat: already started")
	}
	b.started = true
	ctx, b.cancel = context.WithCancel(ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run(ctx)
	}()
	return nil
}

// Shutdown stops dispatching, releases the lease so a standby takes over
// at once, and waits for the loop to end (or ctx).
func (b *Beat) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	cancel := b.cancel
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		<-done // the loop ends promptly once cancelled; never leave it behind
		return ctx.Err()
	}
}

// Leader reports whether this beat holds the lease now.
func (b *Beat) Leader() bool { return b.leader.Load() }

// Add adds or replaces an entry at run time (in this process; in an HA
// deployment add it on every replica, or use a shared Source).
func (b *Beat) Add(e Entry) error {
	if err := e.validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	it := &item{e: e, index: -1, origin: fromAPI}
	if old, ok := b.entries[e.Name]; ok {
		it.last, it.lastRaw = old.last, old.lastRaw
		b.unqueue(old)
	}
	b.entries[e.Name] = it
	if b.leader.Load() {
		b.schedule(it, b.clk.Now())
	}
	b.poke()
	return nil
}

// Remove deletes an entry at run time; it reports whether it existed.
func (b *Beat) Remove(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	it, ok := b.entries[name]
	if ok {
		b.unqueue(it)
		delete(b.entries, name)
		b.poke()
	}
	return ok
}

// Entries returns the current schedule.
func (b *Beat) Entries() []Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Entry, 0, len(b.entries))
	for _, it := range b.entries {
		out = append(out, it.e)
	}
	return out
}

// RunCount returns how many times an entry has been dispatched, from Redis.
func (b *Beat) RunCount(ctx context.Context, name string) (int64, error) {
	return b.st.runCount(ctx, name)
}

func (b *Beat) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// schedule computes it.next and queues it; b.mu held.
func (b *Beat) schedule(it *item, now time.Time) {
	b.unqueue(it)
	if it.last.IsZero() {
		it.last = it.e.LastRunAt
	}
	if it.last.IsZero() {
		// A clocked entry is due at its time even if that has passed;
		// anything else counts its first appearance as its last run.
		if _, clocked := it.e.Schedule.(*schedule.Clocked); !clocked {
			it.last = now
		}
	}
	it.next = it.e.due(it.last)
	if !it.next.IsZero() {
		heap.Push(&b.queue, it)
	}
}

func (b *Beat) unqueue(it *item) {
	if it.index >= 0 {
		heap.Remove(&b.queue, it.index)
	}
}

type itemHeap []*item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *itemHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}
