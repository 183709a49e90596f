package beat

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
)

// BenchmarkDispatchLag: 10,000 interval entries (every 10 s, due times
// spread evenly, ~1,000 dispatches a second) on the real clock, real Redis
// and the in-memory broker; reports the lag from due time to sent, p50
// and p99. scripts/bench/60-beat.sh runs it once (-benchtime 1x).
func BenchmarkDispatchLag(b *testing.B) {
	n, period := 10000, 10*time.Second
	window := envDuration("BEAT_BENCH_WINDOW", 2*period)
	for range b.N {
		lags := runLagBench(b, n, period, window)
		slices.Sort(lags)
		pct := func(p float64) float64 { return lags[int(p*float64(len(lags)-1))].Seconds() * 1000 }
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		b.ReportMetric(float64(len(lags))/window.Seconds(), "dispatch/s")
	}
}

// BenchmarkIdleCPU: 10,000 hourly crontab entries, none due; reports the
// process's CPU time per wall second while the leader waits (lease renewals
// included).
func BenchmarkIdleCPU(b *testing.B) {
	window := envDuration("BEAT_BENCH_IDLE", 10*time.Second)
	for range b.N {
		bt, _, stop := benchBeat(b, 10000, func(i int) Entry {
			c, _ := schedule.ParseCrontab("0", "*", "*", "*", "*")
			return Entry{Name: fmt.Sprintf("cron-%d", i), Task: "bench.noop", Schedule: c}
		}, nil)
		waitUntil(b, 10*time.Second, "leader", bt.Leader)
		time.Sleep(time.Second) // settle after loading the schedule; a benchmark measures real time
		before := cpuTime()
		start := time.Now()
		time.Sleep(window)
		b.ReportMetric(100*(cpuTime()-before).Seconds()/time.Since(start).Seconds(), "idle-cpu-%")
		stop()
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runLagBench(b *testing.B, n int, period, window time.Duration) []time.Duration {
	var mu sync.Mutex
	var lags []time.Duration
	var measuring bool
	start := time.Now()
	bt, _, stop := benchBeat(b, n, func(i int) Entry {
		s, _ := schedule.NewEvery(period, false)
		// Spread the due times evenly over one period.
		last := start.Add(-period + time.Duration(i)*period/time.Duration(n) + time.Second)
		return Entry{Name: fmt.Sprintf("e-%d", i), Task: "bench.noop", Schedule: s, LastRunAt: last}
	}, func(d Dispatch) {
		mu.Lock()
		if measuring {
			lags = append(lags, d.Sent.Sub(d.Due))
		}
		mu.Unlock()
	})
	defer stop()
	waitUntil(b, 10*time.Second, "leader", bt.Leader)
	mu.Lock()
	measuring = true
	mu.Unlock()
	time.Sleep(window) // a benchmark measures real time
	mu.Lock()
	defer mu.Unlock()
	measuring = false
	if len(lags) == 0 {
		b.Fatal("nothing dispatched")
	}
	return slices.Clone(lags)
}

func benchBeat(b *testing.B, n int, entry func(i int) Entry, on func(Dispatch)) (*Beat, string, func()) {
	rdb, err := redisurl.NewClient(testenv.RedisURL(b), redisurl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	prefix := testenv.Prefix(b) + ":"
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: memory.NewServer().Connect()})
	if err != nil {
		b.Fatal(err)
	}
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = entry(i)
	}
	rand.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	bt, err := New(Config{Producer: p, Redis: rdb, Prefix: prefix, Entries: entries, OnDispatch: on,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	if err := bt.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return bt, prefix, func() {
		_ = bt.Shutdown(context.Background())
		ctx := context.Background()
		if keys, _ := rdb.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	}
}
