package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
)

// TestBeatToPythonWorker runs `celeriac beat` against RabbitMQ and a real
// Celery worker that counts each tasks.shared run in Redis. It needs the
// AMQP transport linked into this binary (transports.go); until it is,
// the test says so and skips — beat's messages are checked against
// Celery's own worker code regardless, in beat.TestCeleryAcceptsBeatMessages.
func TestBeatToPythonWorker(t *testing.T) {
	if !slices.Contains(broker.Schemes(), "amqp") {
		t.Skip("the amqp transport is not linked into cmd/celeriac yet (transports.go)")
	}
	amqpURL, redisURL := testenv.AMQPURL(t), testenv.RedisURL(t)
	name := testenv.Prefix(t)
	app := celerytest.New(t, celerytest.Config{Broker: amqpURL, Queue: name, CounterURL: redisURL, CounterHash: name})
	app.StartWorker("-Q", name)
	t.Cleanup(func() { cleanRedis(t, redisURL, "celeriac:beat:{"+name+"*"); cleanRedis(t, redisURL, name+"*") })

	file := filepath.Join(t.TempDir(), "beat.yaml")
	sched := "beat_schedule:\n  shared:\n    task: tasks.shared\n    schedule: 1\n    args: [beat]\n    options: {queue: " + name + ", expires: 30}\n"
	if err := os.WriteFile(file, []byte(sched), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _, errOut := testEnv(map[string]string{"CELERY_BROKER_URL": amqpURL})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, e, []string{"beat", "-s", file, "--redis", redisURL, "--name", name, "--lease", "1s"})
	}()

	rdb, err := redisurl.NewClient(redisURL, redisurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := rdb.HGet(context.Background(), name, "beat").Int()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Python worker ran tasks.shared %d times; beat log:\n%s", n, errOut.String())
		}
		time.Sleep(50 * time.Millisecond) // polling to a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
