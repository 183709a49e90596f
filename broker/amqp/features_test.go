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
	amqp "github.com/rabbitmq/amqp091-go"
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

// TestReconnect cuts the consumer's connection three times mid-stream:
// consumption resumes on a new connection each time, deliveries from a lost
// one settle with ErrStaleDelivery, and every message is processed.
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
	reconnected := make(chan string, 10)
	disconnected := make(chan error, 10)
	b := openWith(t, pub.rec, []string{u.String()}, broker.Options{MinBackoff: 20 * time.Millisecond, Hooks: broker.Hooks{
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

// TestPublishAcrossReconnect: publishes in flight when the connection is
// cut are sent again on the next one; every Publish that returned nil is
// in the queue.
func TestPublishAcrossReconnect(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	direct, rawURL := open(t, broker.Options{})
	u, _ := url.Parse(rawURL)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	px := newProxy(t, host)
	u.Host = px.addr()
	b := openWith(t, direct.rec, []string{u.String()}, broker.Options{MinBackoff: 20 * time.Millisecond})
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

// TestQueueDeletedUnderConsumer: RabbitMQ cancels a consumer whose queue
// is deleted; the consumer declares it again and carries on.
func TestQueueDeletedUnderConsumer(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, rawURL := open(t, broker.Options{MinBackoff: 20 * time.Millisecond})
	q := broker.TaskQueue(testenv.Prefix(t))
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	conn, err := amqp.Dial(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(q.Name, false, false, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, err := b.Inspect(ctx, q.Name)
		if err == nil && info.Consumers == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not consumed again after deletion: %+v %v", info, err)
		}
		time.Sleep(20 * time.Millisecond) // polling to a deadline
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("again")}); err != nil {
		t.Fatal(err)
	}
	if d := recv(t, c); string(d.Message.Body) != "again" {
		t.Fatalf("got %q", d.Message.Body)
	} else {
		_ = d.Ack(ctx)
	}
}

// TestDeclareMatchesKombu: queues kombu declares (as Celery's task_queues
// and event receivers do) are redeclared from Go without
// PRECONDITION_FAILED, and a real difference is still reported.
func TestDeclareMatchesKombu(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	b, rawURL := open(t, broker.Options{})
	py := testenv.Python(t, "kombu")
	name := testenv.Prefix(t)
	script := `
import sys
from kombu import Connection, Exchange, Queue
url, name = sys.argv[1], sys.argv[2]
with Connection(url) as conn:
    ch = conn.channel()
    Queue(name + ".prio", Exchange(name + ".prio", "direct"), routing_key=name + ".prio",
          queue_arguments={"x-max-priority": 10})(ch).declare()
    Queue(name + ".quorum", Exchange(name + ".quorum", "direct"), routing_key=name + ".quorum",
          queue_arguments={"x-queue-type": "quorum"})(ch).declare()
    Queue(name + ".ev", Exchange(name + ".celeryev", "topic"), routing_key="#", durable=False, auto_delete=True,
          message_ttl=5.0, expires=60.0)(ch).declare()
`
	if out, err := exec.CommandContext(ctx, py, "-c", script, rawURL, name).CombinedOutput(); err != nil {
		t.Fatalf("kombu declare: %v\n%s", err, out)
	}
	queues := []broker.Queue{
		broker.TaskQueue(name + ".prio").WithArgs(map[string]any{"x-max-priority": 10}),
		broker.TaskQueue(name + ".quorum").WithArgs(map[string]any{"x-queue-type": "quorum"}),
		{Name: name + ".ev", Exchange: broker.Exchange{Name: name + ".celeryev", Kind: "topic", Durable: true},
			RoutingKey: "#", AutoDelete: true, Args: map[string]any{"x-message-ttl": 5000, "x-expires": 60000}},
	}
	for _, q := range queues {
		if err := b.Declare(ctx, q); err != nil {
			t.Errorf("redeclare %s as kombu did: %v", q.Name, err)
		}
	}
	var mm *broker.DeclareMismatchError
	if err := b.Declare(ctx, queues[0].WithArgs(map[string]any{"x-max-priority": 5})); !errors.As(err, &mm) {
		t.Errorf("different x-max-priority: %v, want DeclareMismatchError", err)
	}
}

func TestHeartbeatAndConnectionName(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	raw := testenv.AMQPURL(t)
	sep := "?"
	if strings.Contains(raw, "?") {
		sep = "&"
	}
	name := "celeriac-test-" + testenv.Prefix(t)
	b, err := broker.Open(ctx, raw+sep+"heartbeat=17", broker.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.(broker.Pinger).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The broker's own view: our connection_name and heartbeat (timeout).
	ctl := testenv.Program(t, "rabbitmqctl")
	out, err := exec.CommandContext(ctx, ctl, "-q", "list_connections", "timeout", "client_properties").CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "rabbitmqctl list_connections: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `{"connection_name","`+name+`"}`) {
			if !strings.HasPrefix(line, "17\t") {
				t.Fatalf("heartbeat is not the URL's 17 s: %s", line)
			}
			return
		}
	}
	t.Fatalf("connection %q not listed:\n%s", name, out)
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
