package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/redisurl"
	"github.com/celeriac/celeriac/internal/testenv"
)

func TestBeatFlags(t *testing.T) {
	tests := []flagCase[beatFlags]{
		{"defaults", []string{"--schedule", "b.yaml"}, nil, func(t *testing.T, f *beatFlags) {
			if f.schedule != "b.yaml" || f.lease != 10*time.Second || f.redis() != defaultBeatRedis || f.catchUp != "run-once" || f.name != "default" {
				t.Errorf("%+v", f)
			}
		}, ""},
		{"redis from the result backend", []string{"-s", "b.yaml"}, map[string]string{"CELERY_RESULT_BACKEND": "redis://r:6379/2"}, func(t *testing.T, f *beatFlags) {
			if f.redis() != "redis://r:6379/2" {
				t.Errorf("redis %q", f.redis())
			}
		}, ""},
		{"not a redis backend", nil, map[string]string{"CELERY_RESULT_BACKEND": "memory://x"}, func(t *testing.T, f *beatFlags) {
			if f.redis() != defaultBeatRedis {
				t.Errorf("redis %q", f.redis())
			}
		}, ""},
		{"all flags", []string{"--schedule", "b.yaml", "--django-db", "postgres://db/app", "--redis", "redis://x/1", "--lease", "3s",
			"--catch-up", "skip", "--name", "n", "-b", "amqp://h//", "--log-format", "json"}, nil, func(t *testing.T, f *beatFlags) {
			if f.djangoDB != "postgres://db/app" || f.redis() != "redis://x/1" || f.lease != 3*time.Second || f.catchUp != "skip" ||
				f.name != "n" || f.conn.brokerURL != "amqp://h//" || f.conn.logFormat != "json" {
				t.Errorf("%+v", f)
			}
		}, ""},
		{"env", nil, map[string]string{"CELERIAC_BEAT_REDIS": "redis://e/3", "CELERIAC_DJANGO_DB": "postgres://d/x"}, func(t *testing.T, f *beatFlags) {
			if f.redis() != "redis://e/3" || f.djangoDB != "postgres://d/x" {
				t.Errorf("%+v", f)
			}
		}, ""},
		{"short lease", []string{"--lease", "1ms"}, nil, nil, "--lease"},
		{"bad catch-up", []string{"--catch-up", "all"}, nil, nil, "--catch-up"},
		{"stray argument", []string{"extra"}, nil, nil, "usage"},
	}
	runFlagCases(t, tests, (*beatFlags).parse)
}

func TestBeatNeedsASchedule(t *testing.T) {
	e, _, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"beat"}); err == nil || !strings.Contains(err.Error(), "--schedule") {
		t.Errorf("err = %v", err)
	}
	e, _, _ = testEnv(nil)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("beat_schedule:\n  x: {task: t, schedule: {crontab: {hour: 99}}}\n"), 0o644)
	if err := run(context.Background(), e, []string{"beat", "-s", bad}); err == nil || !strings.Contains(err.Error(), `entry "x": schedule.crontab`) {
		t.Errorf("err = %v", err)
	}
	// A database without django-celery-beat's tables is refused at start.
	pg := testenv.PostgresURL(t)
	e, _, _ = testEnv(map[string]string{"CELERY_BROKER_URL": "memory://django-db-check"})
	if err := run(context.Background(), e, []string{"beat", "--django-db", pg, "--redis", testenv.RedisURL(t)}); err == nil ||
		!strings.Contains(err.Error(), "--django-db") || !strings.Contains(err.Error(), "migrations") {
		t.Errorf("err = %v", err)
	}
}

// celeriac beat sends the file's entries as Celery task messages.
func TestBeatEndToEnd(t *testing.T) {
	redisURL := testenv.RedisURL(t)
	name := testenv.Prefix(t)
	file := filepath.Join(t.TempDir(), "beat.yaml")
	sched := "beat_schedule:\n  tick:\n    task: tasks.tick\n    schedule: 0.2\n    args: [1]\n    options: {queue: " + name + "}\n"
	if err := os.WriteFile(file, []byte(sched), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanRedis(t, redisURL, "celeriac:beat:{"+name+"*") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, _, errOut := testEnv(map[string]string{"CELERY_BROKER_URL": "memory://" + name})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, e, []string{"beat", "-s", file, "--redis", redisURL, "--name", name, "--lease", "1s"})
	}()
	c, err := memory.NamedServer(name).Connect().Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{broker.TaskQueue(name)}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case d := <-c.Deliveries():
			task, err := broker.DecodeTask(d.Message)
			if err != nil || task.Name != "tasks.tick" {
				t.Fatalf("got %+v, %v", task, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no message; log:\n%s", errOut.String())
		}
	}
	c.Cancel(context.Background())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "beat stopped") {
		t.Errorf("log:\n%s", errOut.String())
	}
}

func cleanRedis(t *testing.T, url, pattern string) {
	rdb, err := redisurl.NewClient(url, redisurl.Options{})
	if err != nil {
		t.Error(err)
		return
	}
	defer rdb.Close()
	ctx := context.Background()
	if keys, _ := rdb.Keys(ctx, pattern).Result(); len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}
