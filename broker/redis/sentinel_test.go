package redis

import (
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// The broker reached through Redis Sentinel (sentinel://…?master_name=),
// as kombu's sentinel transport is configured.
func TestSentinel(t *testing.T) {
	setup := redistest.StartSentinel(t, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t))
	ctx := testCtx(t, 60*time.Second)
	b, err := broker.Open(ctx, setup.URL(), broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	q := broker.TaskQueue(testenv.Prefix(t))
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := &broker.Message{Body: []byte(`"via sentinel"`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8"}
	if err := b.Publish(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}); err != nil {
		t.Fatal(err)
	}
	d := recv(t, c, 10*time.Second)
	if string(d.Message.Body) != `"via sentinel"` {
		t.Fatalf("got %s", d.Message.Body)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.(broker.Pinger).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
