package rpc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/backend/rpc"
	"github.com/celeriac/celeriac/broker"
	_ "github.com/celeriac/celeriac/broker/amqp"
	memtransport "github.com/celeriac/celeriac/broker/memory"
	_ "github.com/celeriac/celeriac/broker/redis"
	"github.com/celeriac/celeriac/internal/celerytest"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// transports the Go-to-Go round trip runs over.
func transports(t *testing.T) map[string]func(t *testing.T) broker.Broker {
	return map[string]func(t *testing.T) broker.Broker{
		"memory": func(t *testing.T) broker.Broker {
			srv := memtransport.NewServer()
			t.Cleanup(srv.Shutdown)
			c := srv.Connect()
			t.Cleanup(func() { _ = c.Close() })
			return c
		},
		"redis": func(t *testing.T) broker.Broker { return openBroker(t, testenv.RedisURL(t)) },
		"amqp":  func(t *testing.T) broker.Broker { return openBroker(t, testenv.AMQPURL(t)) },
	}
}

func openBroker(t *testing.T, url string) broker.Broker {
	t.Helper()
	b, err := broker.Open(ctxFor(t), url, broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func openRPC(t *testing.T, b broker.Broker) broker.ResultBackend {
	t.Helper()
	rb, err := broker.OpenBackend(ctxFor(t), "rpc://", broker.BackendOptions{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rb.Close() })
	return rb
}

func goWorker(t *testing.T, b broker.Broker, queue string) {
	t.Helper()
	// The worker's own backend instance: it only sends.
	w, err := worker.New(worker.Config{Broker: b, Backend: openRPC(t, b), Queues: []broker.Queue{broker.TaskQueue(queue)},
		DefaultQueue: queue, Concurrency: 2, Hostname: "go@" + queue, TrackStarted: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.RegisterBuiltins(w); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, w)
}

func TestGoProducerGoWorker(t *testing.T) {
	for name, openB := range transports(t) {
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t)
			q := testenv.Prefix(t)
			b := openB(t)
			goWorker(t, b, q)
			rb := openRPC(t, b)
			p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: rb, DefaultQueue: q})
			if err != nil {
				t.Fatal(err)
			}
			if p.ReplyTo() != rb.(broker.ReplyBackend).ReplyTo() {
				t.Fatalf("producer reply_to %q is not the backend's queue", p.ReplyTo())
			}
			ok, err := p.Send(ctx, "celeriac.add", []any{2, 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			bad, err := p.Send(ctx, "celeriac.fail", []any{"boom"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Read in reverse order: the first result waits out of band.
			_, err = bad.Get(ctx)
			var te *broker.TaskError
			if !errors.As(err, &te) || te.Exception.Text() != "boom" {
				t.Fatalf("failure: %v", err)
			}
			if v, err := ok.Get(ctx); err != nil || v != int64(5) {
				t.Fatalf("add: %v, %v", v, err)
			}
			if st, _ := ok.State(ctx); st != broker.StateSuccess {
				t.Errorf("state %s", st)
			}
			_ = ok.Forget(ctx)
			if st, _ := ok.State(ctx); st != broker.StatePending {
				t.Errorf("state after Forget %s", st)
			}
		})
	}
}

func TestStoreSendsOnlyWithReplyTo(t *testing.T) {
	srv := memtransport.NewServer()
	defer srv.Shutdown()
	c := srv.Connect()
	defer c.Close()
	ctx := ctxFor(t)
	q := broker.Queue{Name: "client-oid", RoutingKey: "client-oid", AutoDelete: true}
	if err := c.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	rb, err := rpc.New(rpc.Config{Broker: c})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	for _, replyTo := range []string{"", q.Name} {
		if err := rb.Store(ctx, &broker.ResultMeta{TaskID: "x", Status: broker.StateSuccess, Result: int64(1), ReplyTo: replyTo}); err != nil {
			t.Fatal(err)
		}
	}
	if info, err := c.Inspect(ctx, q.Name); err != nil || info.Messages != 1 {
		t.Fatalf("reply queue holds %+v, %v; want the one result sent with reply_to", info, err)
	}
	cons, err := c.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Cancel(ctx)
	d := <-cons.Deliveries()
	p := d.Message.Properties
	if p.CorrelationID != "x" || p.DeliveryMode != 1 || d.Message.ContentType != broker.ContentJSON {
		t.Errorf("result message properties %+v, content type %q", p, d.Message.ContentType)
	}
	want := `{"children": [], "result": 1, "status": "SUCCESS", "task_id": "x", "traceback": null}`
	if got := string(d.Message.Body); got != want {
		t.Errorf("body %s\nwant %s", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := broker.OpenBackend(context.Background(), "rpc://", broker.BackendOptions{}); !errors.Is(err, rpc.ErrNoBroker) {
		t.Errorf("without a broker: %v", err)
	}
	srv := memtransport.NewServer()
	defer srv.Shutdown()
	if _, err := rpc.New(rpc.Config{Broker: srv.Connect(), Serializer: "pickle"}); err == nil {
		t.Error("pickle accepted")
	}
}

// brokerURLs are the transports the interop tests run over.
func brokerURLs(t *testing.T) map[string]string {
	return map[string]string{"redis": testenv.RedisURL(t), "amqp": testenv.AMQPURL(t)}
}

// A Python client with backend='rpc://' gets a Go worker's results.
func TestInteropPythonClientGoWorker(t *testing.T) {
	for name, url := range brokerURLs(t) {
		t.Run(name, func(t *testing.T) {
			q := testenv.Prefix(t)
			goWorker(t, openBroker(t, url), q)
			app := celerytest.New(t, celerytest.Config{Broker: url, Backend: "rpc://", Queue: q})
			out := app.Send("celeriac.add", []any{2, 3}, nil, map[string]any{"count": 3})
			if len(out) != 3 {
				t.Fatalf("outcomes %+v", out)
			}
			for _, o := range out {
				if o.State != "SUCCESS" || o.Result != float64(5) {
					t.Errorf("Python saw %+v", o)
				}
			}
			out = app.Send("celeriac.fail", []any{"boom"}, nil, nil)
			if len(out) != 1 || out[0].State != "FAILURE" || out[0].ExcMessage != "boom" {
				t.Errorf("Python saw %+v", out)
			}
		})
	}
}

// A Go producer with rpc:// gets a Python worker's results.
func TestInteropGoProducerPythonWorker(t *testing.T) {
	for name, url := range brokerURLs(t) {
		t.Run(name, func(t *testing.T) {
			q := testenv.Prefix(t)
			app := celerytest.New(t, celerytest.Config{Broker: url, Backend: "rpc://", Queue: q})
			app.StartWorker()
			ctx := ctxFor(t)
			b := openBroker(t, url)
			p, err := broker.NewProducer(broker.ProducerConfig{Broker: b, Backend: openRPC(t, b), DefaultQueue: q})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.Send(ctx, "tasks.py_add", []any{2, 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := r.Get(ctx); err != nil || v != int64(5) {
				t.Fatalf("Go read %v, %v", v, err)
			}
			r, err = p.Send(ctx, "tasks.py_fail", []any{"bad"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Get(ctx)
			var te *broker.TaskError
			if !errors.As(err, &te) || te.Exception.Type != "ValueError" || te.Exception.Text() != "bad" {
				t.Fatalf("failure read as %v", err)
			}
		})
	}
}
