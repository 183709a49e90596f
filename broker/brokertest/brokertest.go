// Package brokertest is the conformance suite every broker transport must
// pass. A transport's tests call Run with a Harness that opens connections
// to the broker under test:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Harness{
//			Open: func(t *testing.T) broker.Broker { … },
//		})
//	}
//
// Each subtest uses its own queue and exchange names, so the suite can run
// against a shared server and in parallel with other tests.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/google/go-cmp/cmp"
)

// Harness describes the transport under test.
type Harness struct {
	// Open returns a new connection to the broker under test. Each call
	// must be a distinct connection: closing it requeues its unacked
	// deliveries. The suite closes what it opens.
	Open func(t *testing.T) broker.Broker
	// NoPriority skips the priority test (a transport that cannot order
	// by priority must say so here, with a reason in its docs).
	NoPriority bool
	// NoDeadLetter skips dead-lettering of rejected messages.
	NoDeadLetter bool
	// NoDeclareMismatch skips the check that redeclaring with different
	// arguments fails (transports that store no arguments).
	NoDeclareMismatch bool
	// InvertedPriority: lower numbers are more urgent (kombu's Redis).
	InvertedPriority bool
	// DelayResolution is how late PublishAt may deliver. Default 3 s.
	DelayResolution time.Duration
}

// wait bounds every receive in the suite.
const wait = 15 * time.Second

// loadAllowance is added to DelayResolution before lateness fails a test:
// a shared broker on a loaded machine (fsync stalls, a sibling test
// starting a node) can hold a message back for seconds, and that is not
// the transport's defect. Early delivery always fails; lateness beyond the
// resolution is logged.
const loadAllowance = 10 * time.Second

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.DelayResolution == 0 {
		h.DelayResolution = 3 * time.Second
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
		skip bool
	}{
		{"PublishConsumeAck", testPublishConsumeAck, false},
		{"MessageRoundTrip", testMessageRoundTrip, false},
		{"RejectRequeue", testRejectRequeue, false},
		{"RejectDrop", testRejectDrop, false},
		{"DoubleAck", testDoubleAck, false},
		{"Prefetch", testPrefetch, false},
		{"ConcurrentSetPrefetch", testConcurrentSetPrefetch, false},
		{"CloseRequeuesUnacked", testCloseRequeues, false},
		{"CancelKeepsUnackedSettleable", testCancel, false},
		{"DirectExchange", testDirectExchange, false},
		{"TopicExchange", testTopicExchange, false},
		{"FanoutNoAck", testFanout, false},
		{"AddAndCancelQueue", testAddCancelQueue, false},
		{"PublishAt", testPublishAt, false},
		{"InspectPurge", testInspectPurge, false},
		{"ConcurrentPublish", testConcurrentPublish, false},
		{"Priority", testPriority, h.NoPriority},
		{"DeadLetter", testDeadLetter, h.NoDeadLetter},
		{"DeclareMismatch", testDeclareMismatch, h.NoDeclareMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip {
				t.Skip("transport declares it does not support this")
			}
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, h Harness) broker.Broker {
	b := h.Open(t)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func msg(body string, headers map[string]any) *broker.Message {
	return &broker.Message{Body: []byte(body), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Headers: headers, Properties: broker.Properties{DeliveryMode: 2}}
}

func publish(t *testing.T, ctx context.Context, b broker.Broker, q string, bodies ...string) {
	t.Helper()
	for _, body := range bodies {
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q, Message: msg(body, nil)}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func consume(t *testing.T, ctx context.Context, b broker.Broker, opts broker.ConsumeOptions) broker.Consumer {
	t.Helper()
	c, err := b.Consume(ctx, opts)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background()) })
	return c
}

func recv(t *testing.T, c broker.Consumer) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-c.Deliveries():
		if !ok {
			t.Fatal("deliveries channel closed")
		}
		return d
	case <-time.After(wait):
		t.Fatal("no delivery within the deadline")
	}
	return nil
}

// none asserts that nothing arrives for a short while. Used only where
// the property is an absence (prefetch limits).
func none(t *testing.T, c broker.Consumer, d time.Duration) {
	t.Helper()
	select {
	case got := <-c.Deliveries():
		if got != nil {
			t.Fatalf("unexpected delivery %s", got.Message.Body)
		}
	case <-time.After(d):
	}
}

func queueName(t *testing.T) string { return testenv.Prefix(t) }

func testPublishConsumeAck(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := b.Declare(ctx, q); err != nil {
		t.Fatalf("redeclare with the same arguments: %v", err)
	}
	publish(t, ctx, b, q.Name, "1", "2", "3")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 10})
	for _, want := range []string{"1", "2", "3"} {
		d := recv(t, c)
		if string(d.Message.Body) != want {
			t.Fatalf("body %q, want %q (FIFO)", d.Message.Body, want)
		}
		if d.Queue != q.Name || d.Redelivered {
			t.Errorf("delivery info queue=%q redelivered=%v", d.Queue, d.Redelivered)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitEmpty(t, ctx, b, q.Name)
}

func waitEmpty(t *testing.T, ctx context.Context, b broker.Broker, q string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		info, err := b.Inspect(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still holds %d messages", q, info.Messages)
		}
		time.Sleep(20 * time.Millisecond) // polling to a deadline
	}
}

func testMessageRoundTrip(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	headers := map[string]any{
		"lang": "py", "task": "tasks.add", "id": "abc", "shadow": nil, "retries": int64(3),
		"timelimit": []any{nil, 2.5}, "ignore_result": true, "big": int64(1) << 40,
		"nested": map[string]any{"k": "v", "n": int64(-1)}, "list": []any{"a", int64(1), nil},
	}
	m := &broker.Message{Body: []byte{0, 1, 2, 0xff}, ContentType: broker.ContentMsgpack, ContentEncoding: "binary",
		Headers: headers, Properties: broker.Properties{CorrelationID: "abc", ReplyTo: "oid-1", DeliveryMode: 2, Priority: 0}}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}); err != nil {
		t.Fatal(err)
	}
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	defer d.Ack(ctx)
	got := d.Message
	if d := cmp.Diff(m.Body, got.Body); d != "" {
		t.Errorf("body: %s", d)
	}
	if got.ContentType != m.ContentType || got.ContentEncoding != m.ContentEncoding {
		t.Errorf("content %q/%q", got.ContentType, got.ContentEncoding)
	}
	if d := cmp.Diff(headers, got.Headers); d != "" {
		t.Errorf("headers (-sent +received):\n%s", d)
	}
	if got.Properties.CorrelationID != "abc" || got.Properties.ReplyTo != "oid-1" || got.Properties.DeliveryMode != 2 {
		t.Errorf("properties %+v", got.Properties)
	}
	if d.RoutingKey != q.Name {
		t.Errorf("routing key %q", d.RoutingKey)
	}
}

func testRejectRequeue(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "x")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	if err := d.Reject(ctx, true); err != nil {
		t.Fatal(err)
	}
	d2 := recv(t, c)
	if string(d2.Message.Body) != "x" || !d2.Redelivered {
		t.Fatalf("requeued delivery body=%q redelivered=%v", d2.Message.Body, d2.Redelivered)
	}
	if err := d2.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func testRejectDrop(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "drop", "keep")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	if err := d.Reject(ctx, false); err != nil {
		t.Fatal(err)
	}
	d2 := recv(t, c)
	if string(d2.Message.Body) != "keep" {
		t.Fatalf("rejected message came back: %q", d2.Message.Body)
	}
	_ = d2.Ack(ctx)
}

func testDoubleAck(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "x")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx); !errors.Is(err, broker.ErrAcknowledged) {
		t.Fatalf("second ack: %v, want ErrAcknowledged", err)
	}
	if err := d.Reject(ctx, true); !errors.Is(err, broker.ErrAcknowledged) {
		t.Fatalf("reject after ack: %v, want ErrAcknowledged", err)
	}
}

func testCloseRequeues(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	a := h.Open(t)
	q := broker.TaskQueue(queueName(t))
	if err := a.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, a, q.Name, "crash")
	ca, err := a.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, ca)
	if string(d.Message.Body) != "crash" {
		t.Fatalf("body %q", d.Message.Body)
	}
	// The connection goes away without acking: the message must survive.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx); err == nil {
		t.Error("ack on a closed connection succeeded")
	}
	b := open(t, h)
	cb := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d2 := recv(t, cb)
	if string(d2.Message.Body) != "crash" || !d2.Redelivered {
		t.Fatalf("after close: body=%q redelivered=%v", d2.Message.Body, d2.Redelivered)
	}
	_ = d2.Ack(ctx)
}

func testCancel(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "1", "2")
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, c)
	if err := c.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// Deliveries drains and closes.
	deadline := time.After(wait)
	for open := true; open; {
		select {
		case x, ok := <-c.Deliveries():
			if ok && x != nil {
				_ = x.Reject(ctx, true)
			}
			open = ok
		case <-deadline:
			t.Fatal("Deliveries not closed after Cancel")
		}
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("ack after cancel: %v", err)
	}
	c2 := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d2 := recv(t, c2)
	if string(d2.Message.Body) != "2" {
		t.Fatalf("after cancel got %q, want the second message", d2.Message.Body)
	}
	_ = d2.Ack(ctx)
}

func testDirectExchange(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	name := queueName(t)
	ex := broker.Exchange{Name: name + ".ex", Kind: "direct", Durable: true}
	qa := broker.Queue{Name: name + ".a", Exchange: ex, RoutingKey: "a", Durable: true}
	qb := broker.Queue{Name: name + ".b", Exchange: ex, RoutingKey: "b", Durable: true}
	for _, q := range []broker.Queue{qa, qb} {
		if err := b.Declare(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, broker.Publishing{Exchange: ex.Name, RoutingKey: "b", Message: msg("to-b", nil)}); err != nil {
		t.Fatal(err)
	}
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{qb}, Prefetch: 1})
	d := recv(t, c)
	if string(d.Message.Body) != "to-b" || d.Exchange != ex.Name || d.RoutingKey != "b" {
		t.Fatalf("got %q via %q/%q", d.Message.Body, d.Exchange, d.RoutingKey)
	}
	_ = d.Ack(ctx)
	if info, err := b.Inspect(ctx, qa.Name); err != nil || info.Messages != 0 {
		t.Fatalf("queue a got a message for b: %+v %v", info, err)
	}
}

func testTopicExchange(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	name := queueName(t)
	ex := broker.Exchange{Name: name + ".ev", Kind: "topic", Durable: true}
	q := broker.Queue{Name: name + ".tasks", Exchange: ex, RoutingKey: "task.#", AutoDelete: true}
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, NoAck: true})
	for _, rk := range []string{"worker.heartbeat", "task.succeeded", "task.multi"} {
		if err := b.Publish(ctx, broker.Publishing{Exchange: ex.Name, RoutingKey: rk, Message: msg(rk, nil)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"task.succeeded", "task.multi"} {
		d := recv(t, c)
		if string(d.Message.Body) != want {
			t.Fatalf("got %q, want %q", d.Message.Body, want)
		}
	}
}

func testFanout(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	name := queueName(t)
	ex := broker.Exchange{Name: name + ".pidbox", Kind: "fanout"}
	var cs []broker.Consumer
	for _, n := range []string{"w1", "w2"} {
		q := broker.Queue{Name: name + "." + n, Exchange: ex, AutoDelete: true}
		cs = append(cs, consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, NoAck: true}))
	}
	// Consumers are subscribed once Consume returns.
	if err := b.Publish(ctx, broker.Publishing{Exchange: ex.Name, Message: msg("ping", nil)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		d := recv(t, c)
		if string(d.Message.Body) != "ping" {
			t.Fatalf("got %q", d.Message.Body)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatalf("ack of a no-ack delivery must be a no-op: %v", err)
		}
	}
}

func testAddCancelQueue(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	name := queueName(t)
	q1, q2 := broker.TaskQueue(name+".1"), broker.TaskQueue(name+".2")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q1}, Prefetch: 10})
	if err := c.AddQueue(ctx, q2); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q2.Name, "via-2")
	d := recv(t, c)
	if string(d.Message.Body) != "via-2" || d.Queue != q2.Name {
		t.Fatalf("got %q from %q", d.Message.Body, d.Queue)
	}
	_ = d.Ack(ctx)
	if got := len(c.Queues()); got != 2 {
		t.Fatalf("Queues() has %d entries", got)
	}
	if err := c.CancelQueue(ctx, q2.Name); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q2.Name, "not-for-us")
	publish(t, ctx, b, q1.Name, "via-1")
	d = recv(t, c)
	if string(d.Message.Body) != "via-1" {
		t.Fatalf("got %q after cancelling queue 2", d.Message.Body)
	}
	_ = d.Ack(ctx)
	deadline := time.Now().Add(wait)
	for {
		info, err := b.Inspect(ctx, q2.Name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancelled queue holds %d messages, want 1", info.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testPublishAt(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(2 * time.Second)
	if err := b.PublishAt(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("later", nil)}, at); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "now")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 10})
	d := recv(t, c)
	if string(d.Message.Body) != "now" {
		t.Fatalf("delayed message overtook: %q", d.Message.Body)
	}
	_ = d.Ack(ctx)
	d = recv(t, c)
	got := time.Now()
	if string(d.Message.Body) != "later" {
		t.Fatalf("got %q", d.Message.Body)
	}
	// Resolution is a second: the message may arrive up to 1 s early.
	if got.Before(at.Add(-time.Second)) || got.After(at.Add(h.DelayResolution+loadAllowance)) {
		t.Errorf("delivered at %v, due %v", got.Format(time.StampMilli), at.Format(time.StampMilli))
	} else if late := got.Sub(at); late > h.DelayResolution {
		t.Logf("delivered %v late, beyond the %v resolution (a loaded machine?)", late, h.DelayResolution)
	}
	_ = d.Ack(ctx)
}

func testInspectPurge(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if _, err := b.Inspect(ctx, q.Name); !errors.Is(err, broker.ErrQueueNotFound) {
		t.Errorf("Inspect of a missing queue: %v, want ErrQueueNotFound", err)
	}
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "1", "2", "3")
	deadline := time.Now().Add(wait)
	for {
		info, err := b.Inspect(ctx, q.Name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect reports %d messages, want 3", info.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n, err := b.Purge(ctx, q.Name)
	if err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	waitEmpty(t, ctx, b, q.Name)
}

func testConcurrentPublish(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg(fmt.Sprintf("%d-%d", w, i), nil)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 50})
	seen := map[string]bool{}
	for range writers * each {
		d := recv(t, c)
		if seen[string(d.Message.Body)] {
			t.Fatalf("duplicate %s", d.Message.Body)
		}
		seen[string(d.Message.Body)] = true
		_ = d.Ack(ctx)
	}
}

func testPriority(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t)).WithArgs(map[string]any{"x-max-priority": 10})
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	low, high := uint8(1), uint8(9)
	if h.InvertedPriority {
		low, high = high, low
	}
	for i, p := range []uint8{low, low, high} {
		m := msg(fmt.Sprintf("p%d-%d", p, i), nil)
		m.Properties.Priority = p
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	if want := fmt.Sprintf("p%d-2", high); string(d.Message.Body) != want {
		t.Fatalf("first delivery %q, want the urgent %q", d.Message.Body, want)
	}
	_ = d.Ack(ctx)
}

func testDeadLetter(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	name := queueName(t)
	dlx := broker.Exchange{Name: name + ".dlx", Kind: "direct", Durable: true}
	dead := broker.Queue{Name: name + ".dead", Exchange: dlx, RoutingKey: name, Durable: true}
	if err := b.Declare(ctx, dead); err != nil {
		t.Fatal(err)
	}
	q := broker.TaskQueue(name).WithArgs(map[string]any{"x-dead-letter-exchange": dlx.Name})
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, q.Name, "poison")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	if err := d.Reject(ctx, false); err != nil {
		t.Fatal(err)
	}
	cd := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{dead}, Prefetch: 1})
	d2 := recv(t, cd)
	if string(d2.Message.Body) != "poison" {
		t.Fatalf("dead-lettered %q", d2.Message.Body)
	}
	_ = d2.Ack(ctx)
}

func testDeclareMismatch(t *testing.T, h Harness) {
	ctx := ctxFor(t)
	b := open(t, h)
	q := broker.TaskQueue(queueName(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	err := b.Declare(ctx, q.WithArgs(map[string]any{"x-max-priority": 10}))
	var mm *broker.DeclareMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("redeclare with other arguments: %v, want *DeclareMismatchError", err)
	}
	// The connection stays usable after the refusal.
	publish(t, ctx, b, q.Name, "still-works")
	c := consume(t, ctx, b, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	d := recv(t, c)
	_ = d.Ack(ctx)
}
