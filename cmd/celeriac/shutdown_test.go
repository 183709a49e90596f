package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// The binary's signal handling, tested on real processes: this test binary
// re-executed as `celeriac` (TestMain hands over to main).
const runMainEnv = "CELERIAC_TEST_RUN_MAIN"

// workerProc is a `celeriac worker` process with its metrics address.
type workerProc struct {
	cmd  *exec.Cmd
	http string
	done chan error
}

func startWorkerProc(t *testing.T, args ...string) *workerProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(os.Args[0], append([]string{"worker", "--http", addr}, args...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, http: addr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	waitFor(t, p.ready)
	return p
}

// ready reports whether /readyz answers 200.
func (p *workerProc) ready() bool {
	r, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == http.StatusOK
}

var startedRE = regexp.MustCompile(`(?m)^celery_task_started_total\{[^}]*name="celeriac.sleep"[^}]*\} (\d+)`)

// started reads how many sleep tasks the process has started.
func (p *workerProc) started() int {
	r, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	m := startedRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// exitCode waits for the process to end and returns its exit status.
func (p *workerProc) exitCode(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("worker still running after %v", within)
		return -1
	}
}

func TestGracefulShutdown(t *testing.T) {
	amqpURL, redisURL := testenv.AMQPURL(t), testenv.RedisURL(t)
	queue := testenv.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := broker.Open(ctx, amqpURL, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb, err := redis.New(ctx, redis.Config{URL: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	prod, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb, DefaultQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Purge(context.Background(), queue)
	args := []string{"-b", amqpURL, "--result-backend", redisURL, "-Q", queue, "-c", "50", "--guard-lease", "2s", "-E", "-n", "shutdown-" + queue + "@%h"}
	send := func(seconds float64) []*broker.AsyncResult {
		var rs []*broker.AsyncResult
		for range 50 {
			r, err := prod.Send(ctx, "celeriac.sleep", []any{seconds}, nil)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	allSucceed := func(rs []*broker.AsyncResult) {
		t.Helper()
		for _, r := range rs {
			if m, err := r.Wait(ctx); err != nil || m.Status != broker.StateSuccess {
				t.Fatalf("task %s: %+v, %v", r.ID, m, err)
			}
		}
	}

	t.Run("warm", func(t *testing.T) {
		offline := make(chan struct{})
		evq := broker.Queue{Name: queue + "_ev", Exchange: broker.EventExchange, RoutingKey: "worker.offline", AutoDelete: true}
		c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{evq}, NoAck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Cancel(context.Background())
		hostRE := regexp.MustCompile(`"hostname":\s*"shutdown-` + queue + `@`)
		go func() {
			for d := range c.Deliveries() {
				if hostRE.Match(d.Message.Body) {
					close(offline)
					return
				}
			}
		}()
		p := startWorkerProc(t, args...)
		rs := send(1.5)
		waitFor(t, func() bool { return p.started() == 50 })
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.exitCode(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		allSucceed(rs)
		if info, err := b.Inspect(ctx, queue); err != nil || info.Messages != 0 {
			t.Errorf("queue after warm shutdown: %+v, %v", info, err)
		}
		select {
		case <-offline:
		case <-ctx.Done():
			t.Error("no worker-offline event")
		}
	})

	t.Run("cold", func(t *testing.T) {
		p := startWorkerProc(t, args...)
		rs := send(3)
		waitFor(t, func() bool { return p.started() == 50 })
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		// Signals of one kind coalesce while pending: send the second once
		// the first has been acted on (the worker stopped consuming).
		waitFor(t, func() bool { return !p.ready() })
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exitCode(t, 2*time.Second); code != 130 {
			t.Fatalf("exit code %d after a second signal, want 130", code)
		}
		// The unfinished tasks were left unacked: another worker runs them.
		startWorkerProc(t, args...)
		allSucceed(rs)
	})
}
