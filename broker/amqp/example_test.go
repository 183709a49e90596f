package amqp_test

import (
	"context"
	"log"
	"time"

	"github.com/celeriac/celeriac/broker"
	_ "github.com/celeriac/celeriac/broker/amqp"
)

// Open RabbitMQ from a Celery-style failover URL, declare Celery's queue
// and park a message in the broker for ten seconds.
func Example() {
	ctx := context.Background()
	b, err := broker.Open(ctx, "amqp://guest:guest@rabbit-a:5672//;amqp://guest:guest@rabbit-b:5672//",
		broker.Options{Name: "billing-worker"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	q := broker.TaskQueue("celery")
	if err := b.Declare(ctx, q); err != nil {
		log.Fatal(err)
	}
	m := &broker.Message{Body: []byte(`[[2, 3], {}, {}]`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"lang": "py", "task": "tasks.add", "id": "…"}}
	if err := b.PublishAt(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}, time.Now().Add(10*time.Second)); err != nil {
		log.Fatal(err)
	}
}
