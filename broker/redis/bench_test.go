package redis

import (
	"context"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// benchMessage is shaped like a Celery task message (protocol 2 headers,
// a small JSON body), so publish and consume rates compare with kombu's on
// the same work (scripts/bench/55-redis-transport.sh).
func benchMessage() *broker.Message {
	return &broker.Message{
		Body:        []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
		ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: map[string]any{"lang": "py", "task": "tasks.add", "id": "6d1c5f2e-0000-4000-8000-000000000000",
			"shadow": nil, "eta": nil, "expires": nil, "group": nil, "group_index": nil, "retries": int64(0),
			"timelimit": []any{nil, nil}, "root_id": "6d1c5f2e-0000-4000-8000-000000000000", "parent_id": nil,
			"argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "bench@host", "ignore_result": false},
		Properties: broker.Properties{CorrelationID: "6d1c5f2e-0000-4000-8000-000000000000", ReplyTo: "bench", DeliveryMode: 2},
	}
}

// BenchmarkPublish publishes through a direct exchange (binding lookup
// plus LPUSH, as kombu does), one message at a time.
func BenchmarkPublish(b *testing.B) {
	br := open(b, Config{})
	ctx := context.Background()
	q := broker.TaskQueue(testenv.Prefix(b))
	if err := br.Declare(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = br.Purge(ctx, q.Name) })
	m := benchMessage()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := br.Publish(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkConsume consumes and acks b.N messages with prefetch 8 (the Go
// worker's default with two slots), ack emulation included.
func BenchmarkConsume(b *testing.B) {
	br := open(b, Config{})
	ctx := context.Background()
	q := broker.TaskQueue(testenv.Prefix(b))
	if err := br.Declare(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = br.Purge(ctx, q.Name) })
	env, _, err := encodeEnvelope(benchMessage(), q.Name, q.Name)
	if err != nil {
		b.Fatal(err)
	}
	// Fill the queue outside the timed section, in batches.
	for i := 0; i < b.N; i += 1000 {
		pipe := br.Client().Pipeline()
		for j := i; j < min(i+1000, b.N); j++ {
			pipe.LPush(ctx, q.Name, env)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	c, err := br.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Cancel(ctx)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		d := <-c.Deliveries()
		if err := d.Ack(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
