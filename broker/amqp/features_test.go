package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
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
	// Whole-second resolution: up to 1 s early. A quorum queue commits
	// through an fsync'd log, which a loaded machine can stall for seconds,
	// so lateness fails only well beyond the resolution.
	if got.Before(at.Add(-time.Second)) || got.After(at.Add(15*time.Second)) {
		t.Errorf("delayed message arrived at %v, due %v", got.Format(time.StampMilli), at.Format(time.StampMilli))
	} else if late := got.Sub(at); late > 2*time.Second {
		t.Logf("delayed message arrived %v late (a loaded machine?)", late)
	}
	if len(d.Message.Headers) != 0 {
		t.Errorf("ladder headers leaked: %v", d.Message.Headers)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
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
