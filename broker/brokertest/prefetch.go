package brokertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
)

func testPrefetch(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "1", "2", "3", "4", "5")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 2})
	d1, d2 := recv(t, c), recv(t, c)
	none(t, c, 300*time.Millisecond)
	if err := d1.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	d3 := recv(t, c)
	none(t, c, 300*time.Millisecond)
	if err := c.SetPrefetch(ctx, 4); err != nil {
		t.Fatal(err)
	}
	d4, d5 := recv(t, c), recv(t, c)
	for _, d := range []*broker.Delivery{d2, d3, d4, d5} {
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// testConcurrentSetPrefetch: a worker raises and lowers prefetch from
// several goroutines (ETA tasks held and released) while it consumes and
// acks. Every message must still arrive, once, and no call may fail.
func testConcurrentSetPrefetch(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	const n, setters = 300, 4
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprint(i)
	}
	publish(t, ctx, b, q.Name, bodies...)
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	done := make(chan struct{})
	errs := make(chan error, setters)
	var wg sync.WaitGroup
	for g := range setters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if err := c.SetPrefetch(ctx, 1+(g*7+i)%16); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	seen := map[string]bool{}
	deadline := time.After(wait)
	for len(seen) < n {
		select {
		case d, ok := <-c.Deliveries():
			if !ok {
				t.Fatal("deliveries closed")
			}
			if seen[string(d.Message.Body)] {
				t.Fatalf("duplicate %s", d.Message.Body)
			}
			seen[string(d.Message.Body)] = true
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		case err := <-errs:
			t.Fatalf("SetPrefetch: %v", err)
		case <-deadline:
			t.Fatalf("received %d of %d messages while prefetch changed", len(seen), n)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SetPrefetch: %v", err)
	}
}
