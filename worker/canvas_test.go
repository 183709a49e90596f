package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	redisbackend "github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
	memtransport "github.com/celeriac/celeriac/broker/memory"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
)

// canvasEnv is a worker on the memory transport with the real Redis
// result backend (chords need its native join).
func canvasEnv(t *testing.T) (*worker.Worker, *broker.Producer, *redisbackend.Backend) {
	t.Helper()
	rb, err := redisbackend.New(context.Background(), redisbackend.Config{URL: testenv.RedisURL(t), Expires: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := memtransport.NewServer()
	q := testenv.Prefix(t)
	w, err := worker.New(worker.Config{Broker: srv.Connect(), Backend: rb, Queues: []broker.Queue{broker.TaskQueue(q)},
		DefaultQueue: q, Concurrency: 4, Hostname: "canvas@test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		t.Fatal(err)
	}
	client := srv.Connect()
	p, err := broker.NewProducer(broker.ProducerConfig{Broker: client, Backend: rb, DefaultQueue: q})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.Shutdown(context.Background())
		_ = client.Close()
		srv.Shutdown()
		_ = rb.Close()
	})
	return w, p, rb
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCanvas(t *testing.T) {
	w, p, rb := canvasEnv(t)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	add := func(args ...any) *broker.Signature { return broker.NewSignature("celeriac.add", args...) }

	t.Run("chain", func(t *testing.T) {
		r, err := p.Chain(ctx10(t), add(1, 2), add(10), add(100))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := r.Get(ctx10(t)); err != nil || v != int64(113) {
			t.Fatalf("chain = %v, %v", v, err)
		}
	})
	t.Run("group", func(t *testing.T) {
		g, err := p.Group(ctx10(t), add(1, 1), add(2, 2), add(3, 3))
		if err != nil {
			t.Fatal(err)
		}
		vals, err := g.Get(ctx10(t))
		if err != nil || mustJSON(t, vals) != "[2, 4, 6]" {
			t.Fatalf("group = %v, %v", vals, err)
		}
		saved, err := rb.RestoreGroup(ctx10(t), g.ID)
		if err != nil || len(saved.Children) != 3 || saved.Children[1].ID != g.Results[1].ID {
			t.Fatalf("saved group %+v, %v", saved, err)
		}
	})
	t.Run("chord", func(t *testing.T) {
		var header []*broker.Signature
		for i := range 6 {
			header = append(header, add(i, 100))
		}
		r, err := p.Chord(ctx10(t), header, broker.NewSignature("celeriac.echo"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Get(ctx10(t))
		if err != nil {
			t.Fatal(err)
		}
		// The body got the header's results, in header order.
		if got := mustJSON(t, v); got != `{"args": [[100, 101, 102, 103, 104, 105]], "kwargs": {}}` {
			t.Fatalf("chord body got %s", got)
		}
	})
	t.Run("chord failure", func(t *testing.T) {
		body := broker.NewSignature("celeriac.echo")
		errback := broker.NewSignature("celeriac.echo")
		errback.Options["task_id"] = "errback-" + testenv.Prefix(t)
		body.Options["link_error"] = []any{map[string]any{"task": errback.Task, "args": []any{}, "kwargs": map[string]any{},
			"options": errback.Options, "subtask_type": nil, "immutable": false}}
		r, err := p.Chord(ctx10(t), []*broker.Signature{add(1, 1), broker.NewSignature("celeriac.fail", "header broke")}, body)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Get(ctx10(t))
		var te *broker.TaskError
		if !errors.As(err, &te) || te.Exception.Type != "ChordError" {
			t.Fatalf("chord body: %v, want a ChordError", err)
		}
		eb, err := broker.NewAsyncResult(errback.Option("task_id"), rb).Get(ctx10(t))
		if err != nil || mustJSON(t, eb) != `{"args": ["`+r.ID+`"], "kwargs": {}}` {
			t.Fatalf("errback got %v, %v", eb, err)
		}
	})
	t.Run("canvas as a callback", func(t *testing.T) {
		final := add(1000)
		final.Options["task_id"] = "after-" + testenv.Prefix(t)
		link := &broker.Signature{Task: "celery.chain", Kwargs: map[string]any{"tasks": []any{
			map[string]any{"task": "celeriac.add", "args": []any{int64(10)}, "kwargs": map[string]any{}, "options": map[string]any{}, "subtask_type": nil, "immutable": false},
			map[string]any{"task": "celeriac.add", "args": []any{int64(1000)}, "kwargs": map[string]any{}, "options": final.Options, "subtask_type": nil, "immutable": false},
		}}, Options: map[string]any{}, SubtaskType: "chain"}
		if _, err := p.Send(ctx10(t), "celeriac.add", []any{1, 2}, nil, broker.WithLink(link)); err != nil {
			t.Fatal(err)
		}
		if v, err := broker.NewAsyncResult(final.Option("task_id"), rb).Get(ctx10(t)); err != nil || v != int64(1013) {
			t.Fatalf("linked chain = %v, %v", v, err)
		}
	})
}
