package amqp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/celeriac/celeriac/broker"
	bamqp "github.com/celeriac/celeriac/broker/amqp"
	"github.com/celeriac/celeriac/internal/testenv"
	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkPublish measures confirmed publishes of a small task-sized
// message from many goroutines sharing one transport (pipelined confirms).
func BenchmarkPublish(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx := context.Background()
	tr, err := bamqp.Open(ctx, []string{url}, broker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	q := broker.TaskQueue(testenv.Prefix(b))
	if err := tr.Declare(ctx, q); err != nil {
		b.Fatal(err)
	}
	defer func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		_, _ = ch.QueueDelete(q.Name, false, false, false)
		_ = ch.ExchangeDelete(q.Name, false, false)
	}()
	m := &broker.Message{Body: []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
		ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"lang": "py", "task": "tasks.add", "id": "5b9f1c4e-0000-4000-8000-000000000000",
			"retries": 0, "timelimit": []any{nil, nil}, "root_id": "5b9f1c4e-0000-4000-8000-000000000000"},
		Properties: broker.Properties{DeliveryMode: 2, CorrelationID: "5b9f1c4e-0000-4000-8000-000000000000"}}
	// goroutines = parallelism x GOMAXPROCS
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := tr.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
