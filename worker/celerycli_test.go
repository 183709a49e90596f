package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
)

// The operator's view: Debian's `celery inspect`, `celery control` and
// `celery events` against a Go worker on RabbitMQ, as they would be used
// against a Python one.

// startCLIWorker starts a Go worker with events on the machine's RabbitMQ
// (results in Redis) and returns it with a Python app on its queue.
func startCLIWorker(t *testing.T, hostname string) (*amqpEnv, *celerytest.App) {
	t.Helper()
	e := newAMQPEnv(t)
	e.startWorker(nil, func(c *worker.Config) {
		c.Hostname, c.TaskEvents, c.HeartbeatInterval, c.Concurrency = hostname, true, time.Second, 4
	})
	return e, e.python("json", 2)
}

// cli runs a celery command and checks its output holds every want.
func cli(t *testing.T, app *celerytest.App, want []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := app.CLI(ctx, args...)
	if err != nil {
		t.Fatalf("celery %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("celery %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

func TestCeleryInspectAndControl(t *testing.T) {
	host := "celeriac-" + testenv.Prefix(t) + "@test"
	aw, app := startCLIWorker(t, host)
	d := []string{"-d", host, "-t", "10"}

	out := cli(t, app, []string{host + ": OK", "pong", "1 node online"}, append([]string{"inspect", "ping"}, d...)...)
	t.Logf("celery inspect ping:\n%s", out)
	cli(t, app, []string{"celeriac.add", "celeriac.sleep"}, append([]string{"inspect", "registered"}, d...)...)
	cli(t, app, []string{`"max-concurrency": 4`, `"pid"`}, append([]string{"inspect", "stats"}, d...)...)
	cli(t, app, []string{aw.queue}, append([]string{"inspect", "active_queues"}, d...)...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	long, err := aw.w.Producer().Send(ctx, "celeriac.sleep", []any{30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		out, _ := app.CLI(ctx, append([]string{"inspect", "active"}, d...)...)
		return strings.Contains(out, long.ID)
	})
	cli(t, app, []string{"terminate: " + long.ID}, append([]string{"control", "terminate", "SIGTERM", long.ID}, d...)...)
	m, err := long.Wait(ctx)
	if err != nil || m.Status != broker.StateRevoked {
		t.Fatalf("terminated task: %+v, %v", m, err)
	}
	cli(t, app, []string{"flagged as revoked"}, append([]string{"control", "revoke", "abc-123"}, d...)...)
	cli(t, app, []string{"abc-123", long.ID}, append([]string{"inspect", "revoked"}, d...)...)
	cli(t, app, []string{"new rate limit set successfully"}, append([]string{"control", "rate_limit", "celeriac.add", "10/m"}, d...)...)
	if aw.w.RateLimit("celeriac.add") != "10/m" {
		t.Errorf("rate limit not applied: %q", aw.w.RateLimit("celeriac.add"))
	}
	extra := aw.queue + "_extra"
	cli(t, app, []string{"add consumer " + extra}, append([]string{"control", "add_consumer", extra}, d...)...)
	cli(t, app, []string{extra}, append([]string{"inspect", "active_queues"}, d...)...)
	cli(t, app, []string{"no longer consuming from " + extra}, append([]string{"control", "cancel_consumer", extra}, d...)...)
	cli(t, app, []string{"task events disabled"}, append([]string{"control", "disable_events"}, d...)...)
	cli(t, app, []string{"task events enabled"}, append([]string{"control", "enable_events"}, d...)...)
	deleteQueue(t, aw.amqpURL, extra)

	// shutdown never replies (nor does Celery's own worker): the CLI exits
	// with "No nodes replied", and the worker asks its owner to stop.
	out, _ = app.CLI(ctx, append([]string{"control", "shutdown"}, d...)...)
	t.Logf("celery control shutdown: %s", out)
	select {
	case <-aw.w.ShutdownRequested():
	case <-ctx.Done():
		t.Fatal("celery control shutdown did not reach the worker")
	}
}

func TestCeleryEventsDump(t *testing.T) {
	prefix := testenv.Prefix(t)
	hostA := "celeriac-a-" + prefix + "@test"
	a, app := startCLIWorker(t, hostA)
	dump := app.StartStream("events", "--dump")
	// Heartbeats prove the dump is capturing before anything else is checked.
	if _, ok := dump.WaitLine(60*time.Second, hostA, "heartbeat:", "freq=1.0", "sw_ident=celeriac", "active=", "processed=", "loadavg="); !ok {
		t.Fatalf("no heartbeat from %s:\n%s", hostA, dump.Output())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ok, err := a.w.Producer().Send(ctx, "celeriac.add", []any{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := a.w.Producer().Send(ctx, "celeriac.fail", []any{"boom"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{hostA, "task received", "celeriac.add(" + ok.ID + ") args=(2, 3)"},
		{hostA, "task started", ok.ID},
		{hostA, "task succeeded", ok.ID, "result=5", "runtime="},
		{hostA, "task failed", bad.ID, "exception=", "boom", "traceback="},
	} {
		if _, found := dump.WaitLine(30*time.Second, want...); !found {
			t.Errorf("celery events --dump never printed a line with %q:\n%s", want, dump.Output())
		}
	}
	// A worker that starts and stops while the dump watches.
	hostB := "celeriac-b-" + prefix + "@test"
	b, _ := startCLIWorker(t, hostB)
	if _, found := dump.WaitLine(30*time.Second, hostB, "started:", "sw_ident=celeriac"); !found {
		t.Errorf("no worker-online from %s:\n%s", hostB, dump.Output())
	}
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := b.w.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if _, found := dump.WaitLine(30*time.Second, hostB, "shutdown:"); !found {
		t.Errorf("no worker-offline from %s:\n%s", hostB, dump.Output())
	}
}
