package redis

import (
	"context"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// An element that is not a kombu envelope is moved aside, intact, and
// consumption goes on: nothing lost, nothing redelivered forever.
func TestUndecodableMovedAside(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	b := open(t, Config{})
	q := broker.TaskQueue(testenv.Prefix(t))
	bad := "_celeriac.undecodable." + q.Name
	t.Cleanup(func() { b.Client().Del(context.Background(), bad) })
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, junk := range []string{"not json", `{"body": "x"}`} {
		if err := b.Client().LPush(ctx, q.Name, junk).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := &broker.Message{Body: []byte(`"good"`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8"}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, c, 10*time.Second)
	if string(d.Message.Body) != `"good"` {
		t.Fatalf("got %q", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Client().LRange(ctx, bad, 0, -1).Result()
	if err != nil || len(got) != 2 || got[0] != `{"body": "x"}` || got[1] != "not json" {
		t.Fatalf("parked %q, %v", got, err)
	}
}
