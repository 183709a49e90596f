package beat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/clock"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
	goredis "github.com/redis/go-redis/v9"
)

// harness runs beats on a fake clock against the real Redis and an
// in-memory broker, recording what they send.
type harness struct {
	t      *testing.T
	rdb    goredis.UniversalClient
	srv    *memory.Server
	clk    *clock.Fake
	prefix string
	queue  string

	mu     sync.Mutex
	sent   []Dispatch
	event  chan struct{}
	idleAt time.Time
	beats  []*Beat
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	t.Helper()
	rdb, err := redisurl.NewClient(testenv.RedisURL(t), redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.Prefix(t)
	h := &harness{t: t, rdb: rdb, srv: memory.NewServer(), clk: clock.NewFake(t0), prefix: p + ":", queue: p, event: make(chan struct{}, 1000)}
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, h.prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return h
}

func (h *harness) config(entries ...Entry) Config {
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: h.srv.Connect(), DefaultQueue: h.queue, Now: h.clk.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	return Config{
		Producer: p, Redis: h.rdb, Prefix: h.prefix, Entries: entries, Clock: h.clk,
		LeaseTTL: time.Second, Logger: testLogger(h.t),
		OnDispatch: func(d Dispatch) {
			h.mu.Lock()
			h.sent = append(h.sent, d)
			h.mu.Unlock()
			h.event <- struct{}{}
		},
	}
}

func (h *harness) start(cfg Config) *Beat {
	h.t.Helper()
	b, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	b.testIdle = func(now time.Time) {
		h.mu.Lock()
		if now.After(h.idleAt) {
			h.idleAt = now
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	h.beats = append(h.beats, b)
	h.mu.Unlock()
	if err := b.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	waitUntil(h.t, 10*time.Second, "beat leads", b.Leader)
	return b
}

// advance moves the fake clock, waits until the leader has dealt with
// everything due by then, and checks the total number of dispatches.
func (h *harness) advance(d time.Duration, total int) {
	h.t.Helper()
	h.clk.Advance(d)
	target := h.clk.Now()
	h.mu.Lock()
	beats := append([]*Beat(nil), h.beats...)
	h.mu.Unlock()
	waitUntil(h.t, 5*time.Second, "the leader to catch up", func() bool {
		for _, b := range beats {
			b.poke()
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		return !h.idleAt.Before(target) && len(h.sent) >= total
	})
	if got := h.count(); got != total {
		h.t.Fatalf("after +%v: %d dispatches, want %d: %v", d, got, total, h.dispatched())
	}
}

func (h *harness) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sent)
}

func (h *harness) dispatched() []Dispatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Dispatch(nil), h.sent...)
}

func waitUntil(t testing.TB, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling to a deadline, not a timed wait
	}
}

func every(t *testing.T, d time.Duration) schedule.Schedule {
	s, err := schedule.NewEvery(d, false)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIntervalAndMessage(t *testing.T) {
	h := newHarness(t)
	prio := uint8(5)
	h.start(h.config(Entry{
		Name: "add", Task: "tasks.add", Args: []any{16, 16}, Kwargs: map[string]any{"z": 1},
		Schedule: every(t, 30*time.Second),
		Options:  Options{Queue: h.queue + "_q", Priority: &prio, Expires: time.Minute, Headers: map[string]any{"x-trace": "t1"}},
	}))
	h.advance(29*time.Second, 0)
	h.advance(time.Second, 1)
	h.advance(30*time.Second, 2)

	c, err := h.srv.Connect().Consume(context.Background(), broker.ConsumeOptions{Queues: []broker.Queue{broker.TaskQueue(h.queue + "_q")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(context.Background())
	d := <-c.Deliveries()
	task, err := broker.DecodeTask(d.Message)
	if err != nil {
		t.Fatal(err)
	}
	if task.Name != "tasks.add" || len(task.Args) != 2 || task.Kwargs["z"] == nil || task.Priority != 5 {
		t.Errorf("task %+v", task)
	}
	if task.Expires == nil || !task.Expires.Equal(t0.Add(30*time.Second+time.Minute)) {
		t.Errorf("expires %v, want %v", task.Expires, t0.Add(90*time.Second))
	}
	if d.Message.Headers["x-trace"] != "t1" {
		t.Errorf("headers %v", d.Message.Headers)
	}
	for i, s := range h.dispatched() {
		if want := t0.Add(time.Duration(i+1) * 30 * time.Second); !s.Due.Equal(want) {
			t.Errorf("dispatch %d due %v, want %v", i, s.Due, want)
		}
	}
}

func TestCatchUpRunsOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy CatchUp
		want   int
	}{
		{"run once", CatchUpRunOnce, 2},
		{"skip", CatchUpSkip, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			cfg := h.config(Entry{Name: "e", Task: "t", Schedule: every(t, time.Minute)})
			cfg.CatchUp = tc.policy
			b := h.start(cfg)
			h.advance(time.Minute, 1)
			// Beat is down for ten periods.
			if err := b.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.clk.Advance(10 * time.Minute)
			cfg = h.config(Entry{Name: "e", Task: "t", Schedule: every(t, time.Minute)})
			cfg.CatchUp = tc.policy
			b = h.start(cfg)
			h.advance(time.Second, tc.want)
			waitUntil(t, 5*time.Second, "the missed run to be recorded", func() bool {
				n, _ := b.RunCount(context.Background(), "e")
				return n == 2 // advanced once for the ten missed periods
			})
			// Then the schedule continues from the catch-up run.
			h.advance(time.Minute, tc.want+1)
		})
	}
}

// A restarted beat reads the history from Redis: no double run, no skip.
func TestRestartKeepsHistory(t *testing.T) {
	h := newHarness(t)
	entry := Entry{Name: "e", Task: "t", Schedule: every(t, time.Minute)}
	b1 := h.start(h.config(entry))
	h.advance(time.Minute, 1)
	if err := b1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(30 * time.Second)
	h.start(h.config(entry))
	h.advance(29*time.Second, 1)
	h.advance(time.Second, 2)
	ds := h.dispatched()
	if !ds[1].Due.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("after restart due %v, want %v", ds[1].Due, t0.Add(2*time.Minute))
	}
}

func TestAddRemoveAtRunTime(t *testing.T) {
	h := newHarness(t)
	b := h.start(h.config())
	if err := b.Add(Entry{Name: "dyn", Task: "t", Schedule: every(t, 10*time.Second)}); err != nil {
		t.Fatal(err)
	}
	h.advance(10*time.Second, 1)
	at := h.clk.Now().Add(5 * time.Second)
	if err := b.Add(Entry{Name: "once", Task: "t", Schedule: &schedule.Clocked{At: at}}); err != nil {
		t.Fatal(err)
	}
	h.advance(5*time.Second, 2) // "once" at +15 s
	h.advance(5*time.Second, 3) // "dyn" at +20 s
	if !b.Remove("dyn") || b.Remove("dyn") {
		t.Fatal("Remove should report the entry once")
	}
	h.advance(time.Minute, 3)
	if err := b.Add(Entry{Name: "bad", Task: "t"}); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("entry without schedule: %v", err)
	}
}

// A leader whose token is older than the fence cannot advance anything.
func TestFencedWriteRefused(t *testing.T) {
	h := newHarness(t)
	st := newStore(h.rdb, h.prefix, "fence")
	ctx := context.Background()
	if _, err := st.advance(ctx, 7, true, []advance{{name: "e", prev: "", next: "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.advance(ctx, 6, true, []advance{{name: "e", prev: "1", next: "2"}}); !errors.Is(err, ErrStale) {
		t.Fatalf("stale token: %v", err)
	}
	ok, err := st.advance(ctx, 7, true, []advance{{name: "e", prev: "0", next: "2"}, {name: "e", prev: "1", next: "2"}})
	if err != nil || ok[0] || !ok[1] {
		t.Fatalf("compare-and-set: %v %v", ok, err)
	}
	if n, _ := st.runCount(ctx, "e"); n != 2 {
		t.Errorf("count %d, want 2", n)
	}
}

func TestConfigErrors(t *testing.T) {
	h := newHarness(t)
	good := h.config()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no producer", func(c *Config) { c.Producer = nil }, "Config.Producer"},
		{"no redis", func(c *Config) { c.Redis = nil }, "Config.Redis"},
		{"short lease", func(c *Config) { c.LeaseTTL = time.Millisecond }, "Config.LeaseTTL"},
		{"dup", func(c *Config) {
			e := Entry{Name: "a", Task: "t", Schedule: every(t, time.Second)}
			c.Entries = []Entry{e, e}
		}, "Config.Entries[1]"},
		{"no task", func(c *Config) { c.Entries = []Entry{{Name: "a", Schedule: every(t, time.Second)}} }, "task is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			_, err := New(c)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Errorf("got %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestStartAndExpiry(t *testing.T) {
	h := newHarness(t)
	b := h.start(h.config())
	start := t0.Add(90 * time.Second)
	if err := b.Add(Entry{Name: "later", Task: "t", Schedule: every(t, time.Minute), StartTime: start,
		ExpiresAt: t0.Add(4 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Minute, 0)    // due at +1m, held back until the start
	h.advance(30*time.Second, 1) // +1m30s: the start
	h.advance(time.Minute, 2)    // +2m30s
	h.advance(time.Minute, 3)    // +3m30s
	h.advance(time.Minute, 3)    // +4m30s is past the expiry
	if d := h.dispatched(); !d[0].Due.Equal(start) {
		t.Errorf("first run due %v, want the start %v", d[0].Due, start)
	}
}
