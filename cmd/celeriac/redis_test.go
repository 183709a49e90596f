package main

import (
	"context"
	"strings"
	"testing"

	"github.com/celeriac/celeriac/internal/testenv"
)

// TestWorkerAndSendOverRedisRPC runs `celeriac worker` and `celeriac send`
// over the Redis transport with rpc:// results, and `celeriac inspect`
// over its pub/sub remote control: the transports are linked in.
func TestWorkerAndSendOverRedisRPC(t *testing.T) {
	q := testenv.Prefix(t)
	vars := map[string]string{"CELERY_BROKER_URL": testenv.RedisURL(t), "CELERY_RESULT_BACKEND": "rpc://"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _, werr := testEnv(vars)
	done := make(chan error)
	node := "redis@" + q
	go func() { done <- runWorker(ctx, e, []string{"-c", "2", "-Q", q, "-n", node}) }()
	waitFor(t, func() bool { return strings.Contains(werr.String(), "worker ready") })

	ie, iout, _ := testEnv(vars)
	if err := run(context.Background(), ie, []string{"inspect", "ping", "-d", node}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(iout.String(), "pong") {
		t.Errorf("inspect ping printed %q", iout.String())
	}
	se, out, _ := testEnv(vars)
	if err := run(context.Background(), se, []string{"send", "celeriac.add", "2", "3", "--queue", q, "--wait", "--timeout", "20s"}); err != nil {
		t.Fatalf("%v\nworker log:\n%s", err, werr.String())
	}
	if strings.TrimSpace(out.String()) != "5" {
		t.Fatalf("send printed %q, want 5", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
