package redis

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// A Redis restart mid-run: the consumer reconnects by itself and keeps
// consuming (Celery workers are known to hang silently here, celery#10302).
func TestReconnectAfterRedisRestart(t *testing.T) {
	port := testenv.FreePort(t)
	s := redistest.Start(t, port)
	ctx := testCtx(t, 60*time.Second)
	var downs, ups atomic.Int32
	down := make(chan struct{}, 1)
	b := open(t, Config{URL: s.URL(), Options: broker.Options{
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		Hooks: broker.Hooks{
			OnDisconnect: func(error) {
				downs.Add(1)
				select {
				case down <- struct{}{}:
				default:
				}
			},
			OnReconnect: func(string) { ups.Add(1) },
		},
	}})
	q := broker.TaskQueue(testenv.Prefix(t))
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 4})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		t.Helper()
		m := &broker.Message{Body: []byte(body), ContentType: broker.ContentJSON, ContentEncoding: "utf-8"}
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	send("before")
	if d := recv(t, c, 10*time.Second); string(d.Message.Body) != "before" {
		t.Fatalf("got %q", d.Message.Body)
	} else if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	s.Kill()
	// The consumer notices the outage (go-redis' own retries exhausted)
	// before Redis comes back on the same port.
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("consumer never noticed Redis going away")
	}
	s2 := redistest.Start(t, port)
	send("after")
	d := recv(t, c, 20*time.Second)
	if string(d.Message.Body) != "after" {
		t.Fatalf("after restart got %q", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	// Pub/sub (events, remote control) resubscribes by itself too. A
	// PUBLISH before the resubscription is lost, as with kombu, so publish
	// until one arrives.
	ex := broker.Exchange{Name: q.Name + ".pidbox", Kind: "fanout"}
	fc, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{{Name: q.Name + ".w1", Exchange: ex, AutoDelete: true}}, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	s2.Kill()
	redistest.Start(t, port)
	ping := &broker.Message{Body: []byte(`"ping"`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8"}
	deadline := time.After(20 * time.Second)
	for got := false; !got; {
		if err := b.Publish(ctx, broker.Publishing{Exchange: ex.Name, Message: ping}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-fc.Deliveries():
			got = string(d.Message.Body) == `"ping"`
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("fanout consumer never received after a second restart")
		}
	}
	if downs.Load() == 0 || ups.Load() == 0 {
		t.Errorf("hooks: %d disconnects, %d reconnects", downs.Load(), ups.Load())
	}
}
