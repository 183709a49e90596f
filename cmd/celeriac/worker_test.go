package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestWorkerFlags(t *testing.T) {
	tests := []flagCase[workerFlags]{
		{"defaults", nil, nil, func(t *testing.T, f *workerFlags) {
			if f.conn.brokerURL != defaultBrokerURL || f.conn.backendURL != "" || f.queues != "celery" || f.prefetch != 4 {
				t.Errorf("%+v", f)
			}
		}, ""},
		{"env", nil, map[string]string{"CELERY_BROKER_URL": "amqp://x//", "CELERY_RESULT_BACKEND": "redis://y/1"}, func(t *testing.T, f *workerFlags) {
			if f.conn.brokerURL != "amqp://x//" || f.conn.backendURL != "redis://y/1" {
				t.Errorf("%+v", f.conn)
			}
		}, ""},
		{"celery short flags", []string{"-b", "amqp://a//;amqp://b//", "-Q", "high,low", "-c", "8", "-n", "w1@%h", "-l", "debug"}, nil, func(t *testing.T, f *workerFlags) {
			qs := f.queueDecls()
			if f.concurrency != 8 || len(qs) != 2 || qs[1].Name != "low" || !strings.HasPrefix(f.hostname, "w1@") || f.conn.logLevel != "debug" {
				t.Errorf("%+v", f)
			}
		}, ""},
		{"long flags", []string{"--broker", "amqp://a//", "--queues", "q", "--concurrency", "2", "--max-priority", "10"}, nil, func(t *testing.T, f *workerFlags) {
			if q := f.queueDecls()[0]; q.Args["x-max-priority"] != 10 {
				t.Errorf("queue %+v", q)
			}
		}, ""},
		{"bad concurrency", []string{"-c", "0"}, nil, nil, "--concurrency"},
		{"bad prefetch", []string{"--prefetch-multiplier", "0"}, nil, nil, "--prefetch-multiplier"},
		{"empty queues", []string{"-Q", " , "}, nil, nil, "--queues"},
		{"stray argument", []string{"extra"}, nil, nil, "usage"},
	}
	runFlagCases(t, tests, (*workerFlags).parse)
}

func TestWorkerRejectsBadConfigAtStartup(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-b", "nope://x"}, "unknown URL scheme"},
		{[]string{"-b", "memory://x", "-l", "loud"}, "--loglevel"},
		{[]string{"-b", "memory://x", "--log-format", "xml"}, "--log-format"},
		{[]string{"-b", "memory://x", "-n", "w@%q"}, "Hostname"},
		{[]string{"-b", "memory://x", "--serializer", "pickle"}, "--serializer"},
		{[]string{"-b", "memory://x", "--result-backend", "what://x"}, "unknown result backend scheme"},
	} {
		e, _, _ := testEnv(nil)
		err := runWorker(context.Background(), e, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestParseTaskArgs(t *testing.T) {
	args, kwargs, err := parseTaskArgs([]string{"2", `"x"`, "[1, 2]", "-1.5"}, `{"k": null}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 4 || args[1] != "x" || args[3] != -1.5 || kwargs["k"] != nil {
		t.Fatalf("%v %v", args, kwargs)
	}
	if _, _, err := parseTaskArgs([]string{"hello"}, ""); err == nil || !strings.Contains(err.Error(), "quote strings") {
		t.Errorf("bare word accepted: %v", err)
	}
	if _, _, err := parseTaskArgs(nil, "[1]"); err == nil {
		t.Error("non-object --kwargs accepted")
	}
}

// TestWorkerAndSendEndToEnd runs `celeriac worker` and `celeriac send` in
// one process over the in-memory transport and backend.
func TestWorkerAndSendEndToEnd(t *testing.T) {
	vars := map[string]string{"CELERY_BROKER_URL": "memory://cli-e2e", "CELERY_RESULT_BACKEND": "memory://cli-e2e"}
	ctx, cancel := context.WithCancel(context.Background())
	e, _, werr := testEnv(vars)
	done := make(chan error)
	go func() { done <- runWorker(ctx, e, []string{"-c", "2", "-Q", "cli", "-n", "cli@test"}) }()
	waitFor(t, func() bool { return strings.Contains(werr.String(), "worker ready") })

	ie, iout, _ := testEnv(vars)
	if err := run(context.Background(), ie, []string{"inspect", "ping", "-d", "cli@test"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(iout.String(), "->  cli@test: OK") || !strings.Contains(iout.String(), "pong") {
		t.Errorf("inspect ping printed %q", iout.String())
	}
	ie, _, _ = testEnv(vars)
	if err := run(context.Background(), ie, []string{"inspect", "ping", "-d", "nobody@test", "-t", "200ms"}); err == nil {
		t.Error("inspect ping of a missing node succeeded")
	}

	se, out, _ := testEnv(vars)
	if err := run(context.Background(), se, []string{"send", "celeriac.add", "2", "3", "--queue", "cli", "--wait", "--timeout", "10s"}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "5" {
		t.Fatalf("send printed %q, want 5", out.String())
	}
	se, _, _ = testEnv(vars)
	err := run(context.Background(), se, []string{"send", "celeriac.fail", `"boom"`, "--queue", "cli", "--wait"})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failed task: err = %v, want the task's message", err)
	}
	se, out, _ = testEnv(vars)
	if err := run(context.Background(), se, []string{"send", "celeriac.noop", "--queue", "cli", "--count", "200", "--wait"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "published 200 tasks") || !strings.Contains(out.String(), "finished 200 tasks (0 failed)") {
		t.Fatalf("output %q", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(werr.String(), "worker stopped") {
		t.Errorf("worker log lacks the stop line:\n%s", werr.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	e, _, errOut := testEnv(nil)
	if err := run(context.Background(), e, []string{"frobnicate"}); !errors.Is(err, errUsage) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(errOut.String(), "unknown command") {
		t.Error(errOut.String())
	}
}
