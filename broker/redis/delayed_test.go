package redis

import (
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// A message parked by PublishAt lives in Redis, not in the process that
// parked it: another connection delivers it when due, with its priority
// list and fanout routing kept.
func TestPublishAtSurvivesPublisher(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	a := open(t, Config{})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := a.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	m := &broker.Message{Body: []byte(`"later"`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Properties: broker.Properties{Priority: 6}}
	at := time.Now().Add(1500 * time.Millisecond)
	if err := a.PublishAt(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}, at); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := open(t, Config{})
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, c, 10*time.Second)
	if time.Now().Before(at) {
		t.Errorf("delivered %v early", at.Sub(time.Now()))
	}
	if string(d.Message.Body) != `"later"` || d.Message.Properties.Priority != 6 || d.Exchange != q.Name {
		t.Fatalf("got %q priority %d via %q", d.Message.Body, d.Message.Properties.Priority, d.Exchange)
	}
	_ = d.Ack(ctx)

	// Already due: routed at once.
	if err := b.PublishAt(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	d = recv(t, c, 5*time.Second)
	if string(d.Message.Body) != `"later"` {
		t.Fatalf("past-due PublishAt delivered %q", d.Message.Body)
	}
	_ = d.Ack(ctx)
}
