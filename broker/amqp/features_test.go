package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	bamqp "github.com/celeriac/celeriac/broker/amqp"
	"github.com/celeriac/celeriac/internal/testenv"
)

func TestUnroutableAndNack(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, _ := open(t, broker.Options{})
	name := testenv.Prefix(t)
	err := b.Publish(ctx, broker.Publishing{RoutingKey: name + ".missing", Message: msg("lost")})
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("publish to a missing queue: %v, want ErrUnroutable", err)
	}
	// A queue that refuses overflow makes the broker nack.
	q := broker.TaskQueue(name).WithArgs(map[string]any{"x-max-length": 1, "x-overflow": "reject-publish"})
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("1")}); err != nil {
		t.Fatal(err)
	}
	err = b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("2")})
	if !errors.Is(err, broker.ErrNotConfirmed) {
		t.Fatalf("publish beyond x-max-length: %v, want ErrNotConfirmed", err)
	}
	// A missing exchange is a channel error; it is reported and the
	// transport keeps working.
	err = b.Publish(ctx, broker.Publishing{Exchange: name + ".noexchange", RoutingKey: "x", Message: msg("x")})
	if err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("publish to a missing exchange: %v", err)
	}
	if _, err := b.Purge(ctx, q.Name); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("3")}); err != nil {
		t.Fatalf("publish after a channel error: %v", err)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestQuorumQueue(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, _ := open(t, broker.Options{})
	q := broker.TaskQueue(testenv.Prefix(t)).WithArgs(map[string]any{"x-queue-type": "quorum"})
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	// A classic redeclare of a quorum queue is a typed mismatch.
	var mm *broker.DeclareMismatchError
	if err := b.Declare(ctx, broker.TaskQueue(q.Name)); !errors.As(err, &mm) {
		t.Fatalf("classic redeclare: %v, want DeclareMismatchError", err)
	}
	at := time.Now().Add(3 * time.Second)
	if err := b.PublishAt(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("eta")}, at); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 2})
	if err != nil {
		t.Fatalf("consume a quorum queue with prefetch: %v", err)
	}
	defer c.Cancel(ctx)
	for i := range 3 {
		d := recv(t, c)
		if string(d.Message.Body) != fmt.Sprint(i) {
			t.Fatalf("got %q", d.Message.Body)
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetPrefetch(ctx, 5); err != nil {
		t.Fatal(err)
	}
	d := recv(t, c)
	got := time.Now()
	if string(d.Message.Body) != "eta" {
		t.Fatalf("got %q", d.Message.Body)
	}
	if got.Before(at.Add(-time.Second)) || got.After(at.Add(3*time.Second)) {
		t.Errorf("delayed message arrived at %v, due %v", got.Format(time.StampMilli), at.Format(time.StampMilli))
	}
	if len(d.Message.Headers) != 0 {
		t.Errorf("ladder headers leaked: %v", d.Message.Headers)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReconnect cuts the consumer's connection mid-stream: consumption
// resumes on a new connection, deliveries from the lost one settle with
// ErrStaleDelivery, and every message is processed.
func TestReconnect(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	pub, rawURL := open(t, broker.Options{})
	u, _ := url.Parse(rawURL)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	px := newProxy(t, host)
	u.Host = px.addr()
	var reconnects, disconnects sync.WaitGroup
	reconnects.Add(1)
	disconnects.Add(1)
	var once1, once2 sync.Once
	b := openWith(t, pub.rec, []string{u.String()}, broker.Options{MinBackoff: 20 * time.Millisecond, Hooks: broker.Hooks{
		OnReconnect:  func(string) { once1.Do(reconnects.Done) },
		OnDisconnect: func(error) { once2.Do(disconnects.Done) },
	}})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := pub.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	const n = 200
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	go func() {
		for i := range n {
			if err := pub.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg(fmt.Sprint(i))}); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	}()
	seen := map[string]bool{}
	var held *broker.Delivery
	for len(seen) < n {
		d := recv(t, c)
		if len(seen) == n/2 && held == nil {
			// Keep this one unacked and cut the connection under it.
			held = d
			if px.sever() == 0 {
				t.Fatal("no proxied connection to sever")
			}
			disconnects.Wait()
			continue
		}
		if err := d.Ack(ctx); err != nil {
			if errors.Is(err, broker.ErrStaleDelivery) {
				continue // requeued by RabbitMQ; it comes again
			}
			t.Fatal(err)
		}
		seen[string(d.Message.Body)] = true
	}
	reconnects.Wait()
	if err := held.Ack(ctx); !errors.Is(err, broker.ErrStaleDelivery) {
		t.Fatalf("ack from the lost connection: %v, want ErrStaleDelivery", err)
	}
	if !seen[string(held.Message.Body)] {
		t.Fatalf("message %s held during the cut was never redelivered", held.Message.Body)
	}
	// Publishing over the repaired connection works too.
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("after")}); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, c); string(d.Message.Body) != "after" {
		t.Fatalf("got %q", d.Message.Body)
	} else {
		_ = d.Ack(ctx)
	}
}

func deadPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFailover(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	real := testenv.AMQPURL(t)
	rec := newRecorder(t, real)
	dead := "amqp://guest:s3cret@" + deadPort(t) + "//"
	b := openWith(t, rec, []string{dead, real}, broker.Options{})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("x")}); err != nil {
		t.Fatal(err)
	}
	// All dead: Open fails, naming the URLs without their passwords.
	_, err := bamqp.Open(ctx, []string{dead}, broker.Options{ConnectTimeout: 2 * time.Second})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("Open with no live broker: %v", err)
	}
	// Through broker.Open and the registry, with Celery's alias and form.
	b2, err := broker.Open(ctx, strings.Replace(real, "amqp://", "pyamqp://", 1)+";"+strings.Replace(dead, "amqp://", "pyamqp://", 1), broker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if info, err := b2.Inspect(ctx, q.Name); err != nil || info.Messages != 1 {
		t.Fatalf("Inspect via pyamqp: %+v %v", info, err)
	}
	// A bad URL is refused without showing its password.
	_, err = broker.Open(ctx, "amqp://u:s3cret@h:99999//", broker.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
}

// TestPythonLongHeaders: py-amqp writes header integers beyond 32 bits
// with type 'L', which the transport must read.
func TestPythonLongHeaders(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, rawURL := open(t, broker.Options{})
	py := testenv.Python(t, "amqp")
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(rawURL)
	pw, _ := u.User.Password()
	script := `
import sys, amqp
c = amqp.Connection(host=sys.argv[1], userid=sys.argv[2], password=sys.argv[3], virtual_host="/")
c.connect()
ch = c.channel()
m = amqp.Message(b"[]", content_type="application/json", application_headers={
    "big": 2**40, "neg": -2**40, "small": 7, "nested": {"deep": [2**50, "s", None]}, "flag": True})
ch.basic_publish(m, exchange="", routing_key=sys.argv[4])
c.close()
`
	port := u.Port()
	if port == "" {
		port = "5672"
	}
	out, err := exec.CommandContext(ctx, py, "-c", script, u.Hostname()+":"+port, u.User.Username(), pw, q.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("python publish: %v\n%s", err, out)
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	d := recv(t, c)
	h := d.Message.Headers
	if h["big"] != int64(1<<40) || h["neg"] != int64(-1<<40) || h["small"] != int64(7) || h["flag"] != true {
		t.Fatalf("headers %#v", h)
	}
	nested, _ := h["nested"].(map[string]any)
	if deep, _ := nested["deep"].([]any); len(deep) != 3 || deep[0] != int64(1<<50) || deep[1] != "s" || deep[2] != nil {
		t.Fatalf("nested %#v", h["nested"])
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// The connection survived the message.
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_ = context.Background
}

func TestPublishAtChecksTarget(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, _ := open(t, broker.Options{})
	name := testenv.Prefix(t)
	at := time.Now().Add(time.Hour)
	for _, p := range []broker.Publishing{
		{RoutingKey: name + ".noqueue", Message: msg("x")},
		{Exchange: name + ".noexchange", RoutingKey: "k", Message: msg("x")},
	} {
		if err := b.PublishAt(ctx, p, at); !errors.Is(err, broker.ErrUnroutable) {
			t.Errorf("PublishAt to %q/%q: %v, want ErrUnroutable", p.Exchange, p.RoutingKey, err)
		}
	}
	// A named direct exchange as the target, over several ladder levels
	// (5 s = 4 s + 1 s), and a cancelled consumer's leftovers come back.
	ex := broker.Exchange{Name: name + ".ex", Kind: "direct", Durable: true}
	q := broker.Queue{Name: name + ".q", Exchange: ex, RoutingKey: "rk", Durable: true}
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(5 * time.Second)
	m := msg("via-exchange")
	m.Headers = map[string]any{"keep": "me"}
	m.Properties.Expiration = "1000" // must not make it leave a level early
	if err := b.PublishAt(ctx, broker.Publishing{Exchange: ex.Name, RoutingKey: "rk", Message: m}, due); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	d := recv(t, c)
	got := time.Now()
	if string(d.Message.Body) != "via-exchange" || d.RoutingKey != "rk" || d.Message.Headers["keep"] != "me" || len(d.Message.Headers) != 1 {
		t.Fatalf("got %q rk=%q headers=%v", d.Message.Body, d.RoutingKey, d.Message.Headers)
	}
	if got.Before(due.Add(-time.Second)) || got.After(due.Add(3*time.Second)) {
		t.Errorf("arrived %v, due %v", got.Format(time.StampMilli), due.Format(time.StampMilli))
	}
	_ = d.Ack(ctx)
}

func TestSettleAfterClose(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, _ := open(t, broker.Options{})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("x")}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	d := recv(t, c)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err = d.Ack(ctx)
	if !errors.Is(err, broker.ErrClosed) || !errors.Is(err, broker.ErrStaleDelivery) {
		t.Fatalf("ack after Close: %v, want ErrClosed and ErrStaleDelivery", err)
	}
	if _, ok := <-c.Deliveries(); ok {
		t.Fatal("Deliveries still open after Close")
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("y")}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
}
