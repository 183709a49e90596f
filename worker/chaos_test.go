package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	_ "github.com/celeriac/celeriac/broker/amqp"

	"github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/rabbittest"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/lock"
	"github.com/celeriac/celeriac/worker"
)

// The exactly-once fault-injection test. Worker processes (this test
// binary re-executed in chaos-worker mode) run tasks whose side effect is
// counted in Redis, while the test kill -9s them, restarts RabbitMQ, kills
// one of the three Redlock servers and publishes duplicates. It runs twice:
// with leases on three Redlock servers, and with leases on the result
// backend's own Redis, where the guard reads and writes in fused scripts
// (lock.WithPeek, Backend.StoreAndRelease). `make test` runs a small size;
// `make chaos` (CELERIAC_CHAOS=full) a large one.

const chaosWorkerEnv = "CELERIAC_CHAOS_WORKER"

// effectScript is the handler's side effect, written the way worker/doc.go
// tells handlers to: fenced by the lease's token (a stale holder's write is
// refused) and applied once per task id. It also counts runs, so re-runs
// after a kill show in the figures.
var effectScript = goredis.NewScript(`
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local fence = redis.call('HGET', KEYS[2], ARGV[1])
if fence and tonumber(fence) > tonumber(ARGV[2]) then return 'stale' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('HSETNX', KEYS[3], ARGV[1], 1) == 1 then
  redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
end
return 'ok'`)

// chaosKeys are the hashes the effect writes, by test prefix.
func chaosKeys(prefix string) []string {
	return []string{prefix + ":runs", prefix + ":fence", prefix + ":applied", prefix + ":counter"}
}

// chaosWorker is a worker process's main: configured by environment, it
// runs until killed or sent SIGTERM.
func chaosWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "chaos worker:", err); return 1 }
	b, err := broker.Open(ctx, os.Getenv("CHAOS_BROKER"), broker.Options{Logger: log, MaxBackoff: time.Second})
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	rb, err := redis.New(ctx, redis.Config{URL: os.Getenv("CHAOS_BACKEND"), Logger: log})
	if err != nil {
		return fail(err)
	}
	defer rb.Close()
	locker, err := lock.New(lock.Config{URLs: strings.Split(os.Getenv("CHAOS_LOCKS"), ","), Logger: log})
	if err != nil {
		return fail(err)
	}
	defer locker.Close()
	keys := chaosKeys(os.Getenv("CHAOS_PREFIX"))
	w, err := worker.New(worker.Config{
		Broker: b, Backend: rb, Locker: locker, GuardLease: 3 * time.Second,
		Queues: []broker.Queue{broker.TaskQueue(os.Getenv("CHAOS_QUEUE"))}, Concurrency: 4,
		Hostname: "chaos-" + strconv.Itoa(os.Getpid()) + "@%h", Logger: log,
	})
	if err != nil {
		return fail(err)
	}
	w.MustRegister("chaos.effect", worker.Func(func(ctx context.Context) (string, error) {
		req := worker.RequestFrom(ctx)
		select { // work long enough for kills to land mid-task
		case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return effectScript.Run(ctx, rb.Client(), keys, req.ID, req.FencingToken).Text()
	}))
	if err := w.Start(ctx); err != nil {
		return fail(err)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		return fail(err)
	}
	return 0
}

// chaosProc is one worker process the test may kill and restart.
type chaosProc struct {
	env []string
	mu  sync.Mutex
	cmd *exec.Cmd
}

func (p *chaosProc) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = p.env
	cmd.Stderr = os.Stderr
	// Die with the test, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
}

func (p *chaosProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func (p *chaosProc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func TestChaosExactlyOnce(t *testing.T) {
	testenv.Short(t)
	full := os.Getenv("CELERIAC_CHAOS") == "full"
	for _, tc := range []struct {
		name                  string
		redlock               bool
		tasks, kills, workers int
		fullTasks, fullKills  int
	}{
		{"redlock", true, 600, 6, 3, 5000, 25},
		{"single-redis", false, 300, 4, 3, 5000, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tasks, kills, workers := tc.tasks, tc.kills, tc.workers
			if full {
				tasks, kills, workers = tc.fullTasks, tc.fullKills, 4
			}
			chaos(t, tc.redlock, tasks, kills, workers)
		})
	}
}

// chaos is one fault-injection run; redlock puts the leases on three
// Redlock servers (one is killed), else on the backend's Redis.
func chaos(t *testing.T, redlock bool, tasks, kills, workers int) {
	node := rabbittest.Start(t)
	backendURL := testenv.RedisURL(t)
	lockURLs := []string{backendURL}
	var lockServers []*redistest.Server
	if redlock {
		lockURLs = nil
		for range 3 {
			s := redistest.Start(t, testenv.FreePort(t))
			lockServers = append(lockServers, s)
			lockURLs = append(lockURLs, s.URL())
		}
	}
	prefix := testenv.Prefix(t)
	queue := prefix

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := broker.Open(ctx, node.URL(), broker.Options{MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb, err := redis.New(ctx, redis.Config{URL: backendURL})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	rdb := rb.Client()
	defer rdb.Del(context.Background(), chaosKeys(prefix)...)
	prod, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb, DefaultQueue: queue})
	if err != nil {
		t.Fatal(err)
	}

	env := append(os.Environ(), chaosWorkerEnv+"=1", "CHAOS_BROKER="+node.URL(), "CHAOS_BACKEND="+backendURL,
		"CHAOS_LOCKS="+strings.Join(lockURLs, ","), "CHAOS_PREFIX="+prefix, "CHAOS_QUEUE="+queue)
	procs := make([]*chaosProc, workers)
	for i := range procs {
		procs[i] = &chaosProc{env: env}
		procs[i].start(t)
	}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	ids := make([]string, tasks)
	for i := range ids {
		r, err := prod.Send(ctx, "chaos.effect", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = r.ID
	}
	// Duplicate publishes: every tenth id again, same id — some while the
	// first copy waits or runs, some after it finished.
	dups := 0
	publishDups := func(from int) {
		for i := from; i < len(ids); i += 10 {
			if _, err := prod.Send(ctx, "chaos.effect", nil, nil, broker.WithTaskID(ids[i])); err != nil {
				t.Error(err)
			}
			dups++
		}
	}
	publishDups(0)

	// Faults, spread over the run while work remains.
	done := func() int {
		n, _ := rdb.HLen(ctx, prefix+":applied").Result()
		return int(n)
	}
	restarts, redisKilled := 0, false
	for k := 0; k < kills; k++ {
		waitUntil(t, ctx, 300*time.Millisecond)
		p := procs[rand.IntN(len(procs))]
		p.kill()
		p.start(t)
		switch k {
		case 1:
			node.Restart()
			restarts++
		case 2:
			if redlock {
				lockServers[0].Kill()
				redisKilled = true
			}
		case 3:
			publishDups(5)
		}
	}
	t.Logf("faults done with %d/%d effects applied", done(), tasks)

	// Everything completes.
	for _, id := range ids {
		for {
			m, err := rb.Get(ctx, id)
			if err == nil && m.Status == broker.StateSuccess {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("task %s never succeeded (last %+v, %v); %d/%d applied", id, m, err, done(), tasks)
			}
			waitUntil(t, ctx, 50*time.Millisecond)
		}
	}
	// Nothing left behind: not in the task queue, not parked in the delay
	// queues, not unacknowledged.
	var left string
	for drained := time.Now().Add(30 * time.Second); ; {
		out, err := node.ListQueues()
		if err != nil {
			t.Fatal(err)
		}
		if left = queuesWithMessages(out); left == "" || time.Now().After(drained) {
			break
		}
		waitUntil(t, ctx, 200*time.Millisecond)
	}

	counters, err := rdb.HGetAll(ctx, prefix+":counter").Result()
	if err != nil {
		t.Fatal(err)
	}
	runs, err := rdb.HGetAll(ctx, prefix+":runs").Result()
	if err != nil {
		t.Fatal(err)
	}
	lost, doubled, reruns := 0, 0, 0
	for _, id := range ids {
		switch counters[id] {
		case "1":
		case "", "0":
			lost++
		default:
			doubled++
		}
		if n, _ := strconv.Atoi(runs[id]); n > 1 {
			reruns++
		}
	}
	t.Logf("chaos: tasks=%d duplicates=%d workers=%d kills=%d rabbitmq_restarts=%d redlock_server_killed=%v lost=%d doubled=%d reran_after_kill=%d",
		tasks, dups, workers, kills, restarts, redisKilled, lost, doubled, reruns)
	if lost != 0 || doubled != 0 {
		t.Errorf("lost %d, doubled %d; want 0 and 0", lost, doubled)
	}
	if left != "" {
		t.Errorf("messages left in queues:\n%s", left)
	}
	// Results are Celery's: Python reads a few back.
	app := celerytest.New(t, celerytest.Config{Broker: node.URL(), Backend: backendURL, Queue: queue})
	for _, id := range []string{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
		if o := app.Get(id); o.State != "SUCCESS" || o.Result != "ok" {
			t.Errorf("Python AsyncResult(%s): %+v", id, o)
		}
	}
}

// waitUntil pauses the fault schedule for d, or until ctx ends.
func waitUntil(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatal("chaos test ran out of time")
	}
}

// queuesWithMessages returns list_queues lines whose counts are not zero.
func queuesWithMessages(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[1] != "messages_ready" && (f[1] != "0" || f[2] != "0") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
