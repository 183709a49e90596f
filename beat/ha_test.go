package beat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/celeriac/celeriac/beat/schedule"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
)

// The HA test runs each beat as its own process: this test binary started
// again with BEAT_HA_HELPER set. Each records what it sends in a Redis list
// (entry|due in ms|pid), after the send, so the test counts real fires.
const haLease = time.Second

func helperMain() bool {
	if os.Getenv("BEAT_HA_HELPER") == "" {
		return false
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := haHelper(ctx, os.Getenv("BEAT_HA_REDIS"), os.Getenv("BEAT_HA_PREFIX")); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	return true
}

func haHelper(ctx context.Context, url, prefix string) error {
	rdb, err := redisurl.NewClient(url, redisurl.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: memory.NewServer().Connect()})
	if err != nil {
		return err
	}
	tick, _ := schedule.NewEvery(time.Second, true) // due on whole seconds
	pid := os.Getpid()
	b, err := New(Config{
		Producer: p, Redis: rdb, Prefix: prefix, LeaseTTL: haLease,
		Entries: []Entry{{Name: "tick", Task: "t", Schedule: tick}},
		OnDispatch: func(d Dispatch) {
			rdb.RPush(context.Background(), prefix+"fires", fmt.Sprintf("%s|%d|%d", d.Entry, d.Due.UnixMilli(), pid))
		},
	})
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	return b.Shutdown(context.Background())
}

type fire struct {
	due int64
	pid int
}

func TestHAThreeProcesses(t *testing.T) {
	url := testenv.RedisURL(t)
	testenv.Short(t)
	h := newHarness(t)
	prefix := h.prefix
	procs := map[int]*exec.Cmd{}
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BEAT_HA_HELPER=1", "BEAT_HA_REDIS="+url, "BEAT_HA_PREFIX="+prefix)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[cmd.Process.Pid] = cmd
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
			t.Fatalf("helper said %q", line)
		}
	}
	fires := func() []fire {
		raw, err := h.rdb.LRange(context.Background(), prefix+"fires", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []fire
		for _, r := range raw {
			parts := strings.Split(r, "|")
			due, _ := strconv.ParseInt(parts[1], 10, 64)
			pid, _ := strconv.Atoi(parts[2])
			out = append(out, fire{due, pid})
		}
		return out
	}
	waitFires := func(n int, within time.Duration) []fire {
		t.Helper()
		var fs []fire
		waitUntil(t, within, fmt.Sprintf("%d fires", n), func() bool { fs = fires(); return len(fs) >= n })
		return fs
	}
	fs := waitFires(3, 15*time.Second)
	leader := fs[len(fs)-1].pid

	// kill -9 the leader: a standby must fire within the lease (plus the
	// one-second tick and some slack for this busy machine).
	killed := time.Now()
	if err := procs[leader].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n := len(fires())
	var second int
	waitUntil(t, haLease+5*time.Second, "a standby to fire", func() bool {
		for _, f := range fires()[n:] {
			if f.pid != leader {
				second = f.pid
				return true
			}
		}
		return false
	})
	failover := time.Since(killed)
	t.Logf("failover after kill -9: first standby fire %v after the kill (lease %v)", failover, haLease)
	if failover > haLease+3*time.Second {
		t.Errorf("failover took %v, lease %v", failover, haLease)
	}

	// SIGSTOP the new leader past its lease, let the third take over,
	// then wake the paused one: it must not fire a tick again.
	waitFires(len(fires())+2, 10*time.Second)
	if err := procs[second].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	n = len(fires())
	var third int
	waitUntil(t, haLease+5*time.Second, "the third beat to fire", func() bool {
		for _, f := range fires()[n:] {
			if f.pid != second && f.pid != leader {
				third = f.pid
				return true
			}
		}
		return false
	})
	_ = procs[second].Process.Signal(syscall.SIGCONT)
	waitFires(len(fires())+3, 10*time.Second)

	for pid, cmd := range procs {
		if pid != leader {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("beat %d exit: %v", pid, err)
			}
		}
	}

	// Every due tick fired at most once, and no stretch of ticks was lost
	// beyond the failovers (each is caught up by a single late run).
	all := fires()
	seen := map[int64]int{}
	for _, f := range all {
		seen[f.due]++
	}
	var dups []int64
	for due, c := range seen {
		if c > 1 {
			dups = append(dups, due)
		}
	}
	sort.Slice(dups, func(i, j int) bool { return dups[i] < dups[j] })
	if len(dups) > 0 {
		t.Errorf("ticks fired twice: %v", dups)
	}
	byPid := map[int]int{}
	for _, f := range all {
		byPid[f.pid]++
	}
	first, last := all[0].due, all[len(all)-1].due
	ticks := (last-first)/1000 + 1
	t.Logf("%d fires over %d ticks, by process %v (leaders %d → %d → %d), 0 duplicates", len(all), ticks, byPid, leader, second, third)
	if missing := ticks - int64(len(seen)); missing > 2*int64((haLease+2*time.Second)/time.Second) {
		t.Errorf("%d ticks never fired: more than two failovers' worth", missing)
	}
}
