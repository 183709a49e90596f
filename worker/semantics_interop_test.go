package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
)

// Task semantics across languages: what Python sends, a Go worker honours
// as Celery's would, and the other way round.

func TestInteropRetryCounting(t *testing.T) {
	aw := newAMQPEnv(t)
	aw.startWorker(map[string]worker.Handler{
		"tasks.go_retry": worker.Func(func(ctx context.Context) (map[string]any, error) {
			req := worker.RequestFrom(ctx)
			if req.Retries < 2 {
				return nil, worker.Retry(errors.New("not yet"), worker.Countdown(100*time.Millisecond))
			}
			return map[string]any{"retries": req.Retries}, nil
		}),
	})
	app := aw.python("json", 2)

	t.Run("PythonSendsGoRetries", func(t *testing.T) {
		out := app.Send("tasks.go_retry", nil, nil, nil)
		if len(out) != 1 || out[0].State != "SUCCESS" || out[0].Result.(map[string]any)["retries"] != float64(2) {
			t.Fatalf("got %+v", out)
		}
	})
	t.Run("GoSendsPythonRetries", func(t *testing.T) {
		// A Python worker on its own queue retries tasks.py_retry twice.
		redisURL := testenv.RedisURL(t)
		pyQueue := testenv.Prefix(t)
		hash := pyQueue + ":runs"
		py := celerytest.New(t, celerytest.Config{Broker: testenv.AMQPURL(t), Backend: redisURL, Queue: pyQueue,
			CounterURL: redisURL, CounterHash: hash})
		py.StartWorker("-Q", pyQueue)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r, err := aw.w.Producer().Send(ctx, "tasks.py_retry", []any{"k"}, nil, broker.WithQueue(pyQueue))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		if err := r.GetInto(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if got["retries"] != 2 || got["runs"] != 3 {
			t.Fatalf("got %v, want 2 retries in 3 runs", got)
		}
	})
}

func TestInteropETAExpiresTimeLimit(t *testing.T) {
	var mu sync.Mutex
	var late []time.Duration
	aw := newAMQPEnv(t)
	aw.startWorker(map[string]worker.Handler{
		"tasks.when": worker.Func(func(ctx context.Context) (string, error) {
			now := time.Now()
			req := worker.RequestFrom(ctx)
			if req.ETA == nil {
				return "", errors.New("no eta")
			}
			mu.Lock()
			late = append(late, now.Sub(*req.ETA))
			mu.Unlock()
			return "ran", nil
		}),
	})
	app := aw.python("json", 2)

	t.Run("Countdown", func(t *testing.T) {
		out := app.Send("tasks.when", nil, nil, map[string]any{"countdown": 2, "count": 3})
		for _, o := range out {
			if o.State != "SUCCESS" || o.Result != "ran" {
				t.Fatalf("got %+v", o)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, d := range late {
			if d < 0 {
				t.Errorf("a countdown task started %v early", -d)
			}
		}
		t.Logf("started after their ETA by %v (Celery 5.2.6's worker: 1.5–5 s)", late)
	})
	t.Run("Expired", func(t *testing.T) {
		out := app.Send("celeriac.add", []any{1, 2}, nil, map[string]any{"expires": -5})
		if len(out) != 1 || out[0].State != "REVOKED" || out[0].ExcType != "TaskRevokedError" {
			t.Fatalf("got %+v, want REVOKED raising TaskRevokedError", out)
		}
	})
	t.Run("TimeLimit", func(t *testing.T) {
		out := app.Send("celeriac.sleep", []any{30}, nil, map[string]any{"time_limit": 1})
		if len(out) != 1 || out[0].State != "FAILURE" || out[0].ExcType != "TimeLimitExceeded" {
			t.Fatalf("got %+v, want FAILURE raising TimeLimitExceeded", out)
		}
	})
}
