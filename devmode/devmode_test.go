package devmode_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/beat"
	"github.com/celeriac/celeriac/devmode"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a dev server on a free port and stops it when the test ends.
func start(t *testing.T, cfg devmode.Config) *devmode.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := devmode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Start's ctx is the system's lifetime, as for worker.Start.
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// TestPythonClient is dev mode's promise: with no servers, a Python Celery
// client pointed at the printed URLs gets results from the Go worker —
// built-in tasks and a program's own.
func TestPythonClient(t *testing.T) {
	s := start(t, devmode.Config{
		Register: func(w *worker.Worker) error {
			return w.Register("tasks.mul", worker.Func(func(ctx context.Context, x, y int) (int, error) { return x * y, nil }))
		},
	})
	app := celerytest.New(t, celerytest.Config{Broker: s.BrokerURL(), Backend: s.BackendURL(), Queue: "celery"})
	tests := []struct {
		name string
		args []any
		want float64
	}{
		{"celeriac.add", []any{2, 3}, 5},
		{"tasks.mul", []any{6, 7}, 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := app.Send(tc.name, tc.args, nil, map[string]any{"timeout": 20})
			if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result != tc.want {
				t.Fatalf("got %+v, want SUCCESS %v", out, tc.want)
			}
		})
	}
}

// TestGoProducer: a Go program embedding dev mode sends through the same
// broker and reads the result.
func TestGoProducer(t *testing.T) {
	s := start(t, devmode.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := s.Worker().Producer().Send(ctx, "celeriac.add", []any{40, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := res.GetInto(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != 42 {
		t.Fatalf("got %d, want 42", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  devmode.Config
		want string
	}{
		{"bad addr", devmode.Config{Addr: "nope"}, "Config.Addr"},
		{"negative concurrency", devmode.Config{Concurrency: -1}, "Config.Concurrency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := devmode.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestAddrInUse(t *testing.T) {
	s := start(t, devmode.Config{})
	addr := s.BrokerURL()[len("redis://") : len(s.BrokerURL())-len("/0")]
	s2, err := devmode.New(devmode.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "Config.Addr") {
		t.Fatalf("Start on a used address: %v", err)
	}
}

// TestBeat: with a schedule, dev mode's beat sends through the embedded
// broker and the worker runs what it sends.
func TestBeat(t *testing.T) {
	f, err := beat.ParseFile("dev.yaml", []byte(`
beat_schedule:
  tick:
    task: tasks.tick
    schedule: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan struct{}, 10)
	start(t, devmode.Config{
		Schedule: f.Entries,
		Register: func(w *worker.Worker) error {
			return w.Register("tasks.tick", worker.Func(func() {
				select {
				case ticks <- struct{}{}:
				default:
				}
			}))
		},
	})
	for range 2 {
		select {
		case <-ticks:
		case <-time.After(20 * time.Second):
			t.Fatal("beat's task did not run")
		}
	}
}
