package amqp_test

import (
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/rabbittest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// TestBrokerRestartKeepsDelayed restarts a private RabbitMQ node while
// messages wait in the delay ladder (to a classic and a quorum queue): they
// survive and arrive when due, and the consumer resumes by itself.
func TestBrokerRestartKeepsDelayed(t *testing.T) {
	testenv.Short(t)
	t.Parallel()
	ctx := ctxFor(t)
	node := rabbittest.Start(t)
	rec := newRecorder(t, node.URL())
	b := openWith(t, rec, []string{node.URL()}, broker.Options{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	name := testenv.Prefix(t)
	classic := broker.TaskQueue(name + ".classic")
	quorum := broker.TaskQueue(name + ".quorum").WithArgs(map[string]any{"x-queue-type": "quorum"})
	due := time.Now().Add(12 * time.Second)
	for _, q := range []broker.Queue{classic, quorum} {
		if err := b.Declare(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := b.PublishAt(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg(q.Name)}, due); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{classic, quorum}, Prefetch: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	node.Restart()
	if time.Now().After(due) {
		t.Skipf("the restart took past the due time; nothing to show")
	}
	got := map[string]bool{}
	for len(got) < 2 {
		d := recv(t, c)
		if now := time.Now(); now.Before(due.Add(-time.Second)) {
			t.Fatalf("%s arrived %v early", d.Message.Body, due.Sub(now))
		}
		got[string(d.Message.Body)] = true
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
