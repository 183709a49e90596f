package amqp_test

import (
	"context"
	"fmt"
	"sync"
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

// BenchmarkConsume compares draining a queue through the transport
// (consume, convert, ack) with a bare amqp091-go consumer that only acks.
func BenchmarkConsume(b *testing.B) {
	url := testenv.AMQPURL(b)
	ctx := context.Background()
	tr, err := bamqp.Open(ctx, []string{url}, broker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	q := broker.TaskQueue(testenv.Prefix(b))
	if err := tr.Declare(ctx, q); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ch, _ := conn.Channel()
		_, _ = ch.QueueDelete(q.Name, false, false, false)
		_ = ch.ExchangeDelete(q.Name, false, false)
	}()
	fill := func(b *testing.B) {
		b.StopTimer()
		defer b.StartTimer()
		m := &broker.Message{Body: []byte(`[[], {}, {}]`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
			Headers:    map[string]any{"lang": "py", "task": "celeriac.noop", "id": "x", "timelimit": []any{nil, nil}},
			Properties: broker.Properties{DeliveryMode: 2}}
		var wg sync.WaitGroup
		per := (b.N + 15) / 16
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					_ = tr.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m})
				}
			}()
		}
		wg.Wait()
	}
	b.Run("celeriac", func(b *testing.B) {
		fill(b)
		c, err := tr.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 64})
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			d := <-c.Deliveries()
			_ = d.Ack(ctx)
		}
		b.StopTimer()
		_ = c.Cancel(ctx)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		_, _ = tr.Purge(ctx, q.Name)
	})
	b.Run("amqp091", func(b *testing.B) {
		fill(b)
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		_ = ch.Qos(64, 0, false)
		ds, err := ch.Consume(q.Name, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			d := <-ds
			_ = d.Ack(false)
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		ch.Close()
		_, _ = tr.Purge(ctx, q.Name)
	})
}
