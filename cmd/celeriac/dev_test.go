package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	_ "github.com/celeriac/celeriac/broker/redis"
)

// TestDevRuns starts `celeriac dev`, sends a task to the URL it prints, and
// stops it with the signal context as a user's Ctrl-C would.
func TestDevRuns(t *testing.T) {
	e, stdout, stderr := testEnv(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, e, []string{"dev", "--listen", "127.0.0.1:0", "--schedule", "none"}) }()
	urlRE := regexp.MustCompile(`export CELERY_BROKER_URL=(\S+)`)
	waitFor(t, func() bool { return urlRE.MatchString(stdout.String()) })
	url := urlRE.FindStringSubmatch(stdout.String())[1]
	if !strings.Contains(stdout.String(), "not for production") {
		t.Errorf("dev mode does not say it is for development only:\n%s", stdout)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	b, err := broker.Open(sctx, url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rb, err := broker.OpenBackend(sctx, url, broker.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Send(sctx, "celeriac.echo", []any{"hi"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(sctx); err != nil || mustJSONString(got) != `{"args":["hi"],"kwargs":{}}` {
		t.Fatalf("echo: %v, %v", got, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dev: %v\n%s", err, stderr)
	}
}

func TestDevBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"concurrency", []string{"dev", "-c", "0"}, "--concurrency"},
		{"schedule", []string{"dev", "--listen", "127.0.0.1:0", "--schedule", "/nonexistent.yaml"}, "--schedule"},
		{"listen", []string{"dev", "--listen", "nope", "--schedule", "none"}, "Config.Addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(nil)
			err := run(context.Background(), e, tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func mustJSONString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
