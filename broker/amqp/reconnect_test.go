package amqp_test

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	bamqp "github.com/celeriac/celeriac/broker/amqp"
	"github.com/celeriac/celeriac/internal/testenv"
)

// TestReconnect cuts the consumer's connection three times mid-stream:
// consumption resumes on a new connection each time, deliveries from a lost
// one settle with ErrStaleDelivery, and every message is processed.
func TestReconnect(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	pub, rawURL := open(t, broker.Options{})
	px, proxied := proxiedURL(t, rawURL)
	reconnected := make(chan string, 10)
	disconnected := make(chan error, 10)
	b := openWith(t, pub.rec, []string{proxied}, broker.Options{MinBackoff: 20 * time.Millisecond, Hooks: broker.Hooks{
		OnReconnect:  func(url string) { reconnected <- url },
		OnDisconnect: func(err error) { disconnected <- err },
	}})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := pub.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	const n = 300
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
	cuts := map[int]bool{n / 4: true, n / 2: true, 3 * n / 4: true}
	seen := map[string]bool{}
	var held []*broker.Delivery
	for len(seen) < n {
		d := recv(t, c)
		if cuts[len(seen)] {
			// Keep this one unacked and cut the connection under it.
			delete(cuts, len(seen))
			held = append(held, d)
			if px.sever() == 0 {
				t.Fatal("no proxied connection to sever")
			}
			<-disconnected
			<-reconnected
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
	if len(held) != 3 {
		t.Fatalf("%d cuts made, want 3", len(held))
	}
	for _, h := range held {
		if err := h.Ack(ctx); !errors.Is(err, broker.ErrStaleDelivery) {
			t.Fatalf("ack from a lost connection: %v, want ErrStaleDelivery", err)
		}
		if !seen[string(h.Message.Body)] {
			t.Fatalf("message %s held during a cut was never redelivered", h.Message.Body)
		}
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

// TestPublishAcrossReconnect: publishes in flight when the connection is
// cut are sent again on the next one; every Publish that returned nil is
// in the queue.
func TestPublishAcrossReconnect(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	direct, rawURL := open(t, broker.Options{})
	px, proxied := proxiedURL(t, rawURL)
	b := openWith(t, direct.rec, []string{proxied}, broker.Options{MinBackoff: 20 * time.Millisecond})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := direct.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	cut := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg(fmt.Sprintf("%d-%d", w, i))}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				mu.Lock()
				sent++
				if sent == writers*each/3 {
					close(cut)
				}
				mu.Unlock()
			}
		}()
	}
	<-cut
	px.sever()
	wg.Wait()
	c, err := direct.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	seen := map[string]bool{}
	for len(seen) < writers*each {
		d := recv(t, c)
		seen[string(d.Message.Body)] = true
		_ = d.Ack(ctx)
	}
}

// TestBrokerClosesConnection: an operator's `rabbitmqctl close_connection`
// (CONNECTION_FORCED from the server, not a network cut) is repaired too.
func TestBrokerClosesConnection(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	name := "celeriac-test-" + testenv.Prefix(t)
	reconnected := make(chan string, 4)
	b, _ := open(t, broker.Options{Name: name, MinBackoff: 20 * time.Millisecond,
		Hooks: broker.Hooks{OnReconnect: func(u string) { reconnected <- u }}})
	q := broker.TaskQueue(testenv.Prefix(t))
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	ctl := testenv.Program(t, "rabbitmqctl")
	out, err := exec.CommandContext(ctx, ctl, "-q", "list_connections", "pid", "client_properties").CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "rabbitmqctl list_connections: %v: %s", err, out)
	}
	var pid string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `{"connection_name","`+name+`"}`) {
			pid, _, _ = strings.Cut(line, "\t")
		}
	}
	if pid == "" {
		t.Fatalf("connection %q not listed:\n%s", name, out)
	}
	if out, err := exec.CommandContext(ctx, ctl, "close_connection", pid, "test: operator closes it").CombinedOutput(); err != nil {
		t.Fatalf("close_connection: %v: %s", err, out)
	}
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("no reconnect after close_connection")
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("after")}); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, c); string(d.Message.Body) != "after" {
		t.Fatalf("got %q", d.Message.Body)
	} else {
		_ = d.Ack(ctx)
	}
}
