package amqp_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	bamqp "github.com/celeriac/celeriac/broker/amqp"
	"github.com/celeriac/celeriac/internal/testenv"
	amqp "github.com/rabbitmq/amqp091-go"
)

// recorder remembers the queues and exchanges a test declares so that
// cleanup can delete them from the shared RabbitMQ.
type recorder struct {
	mu        sync.Mutex
	queues    map[string]bool
	exchanges map[string]bool
}

func (r *recorder) queue(q broker.Queue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queues[q.Name] = true
	if q.Exchange.Name != "" {
		r.exchanges[q.Exchange.Name] = true
	}
}

// tracked is a Transport whose declarations are recorded.
type tracked struct {
	*bamqp.Transport
	rec *recorder
}

func (x tracked) Declare(ctx context.Context, q broker.Queue) error {
	x.rec.queue(q)
	return x.Transport.Declare(ctx, q)
}

func (x tracked) DeclareExchange(ctx context.Context, ex broker.Exchange) error {
	x.rec.queue(broker.Queue{Exchange: ex})
	return x.Transport.DeclareExchange(ctx, ex)
}

func (x tracked) Consume(ctx context.Context, opts broker.ConsumeOptions) (broker.Consumer, error) {
	for _, q := range opts.Queues {
		x.rec.queue(q)
	}
	c, err := x.Transport.Consume(ctx, opts)
	if err != nil {
		return nil, err
	}
	return trackedConsumer{c, x.rec}, nil
}

type trackedConsumer struct {
	broker.Consumer
	rec *recorder
}

func (c trackedConsumer) AddQueue(ctx context.Context, q broker.Queue) error {
	c.rec.queue(q)
	return c.Consumer.AddQueue(ctx, q)
}

// newRecorder returns a recorder whose entities are deleted when t ends.
func newRecorder(t *testing.T, url string) *recorder {
	r := &recorder{queues: map[string]bool{}, exchanges: map[string]bool{}}
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for q := range r.queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for ex := range r.exchanges {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(ex, false, false)
				// PublishAt's last hop towards this exchange, if any.
				_, _ = ch.QueueDelete("celeriac.delay.to."+ex, false, false, false)
				_ = ch.Close()
			}
		}
	})
	return r
}

// open connects to the test RabbitMQ; the connection and what it declares
// go away with t.
func open(t *testing.T, opts broker.Options) (tracked, string) {
	t.Helper()
	url := testenv.AMQPURL(t)
	rec := newRecorder(t, url)
	return openWith(t, rec, []string{url}, opts), url
}

func openWith(t *testing.T, rec *recorder, urls []string, opts broker.Options) tracked {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	tr, err := bamqp.Open(ctx, urls, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tracked{tr, rec}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func recv(t *testing.T, c broker.Consumer) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-c.Deliveries():
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within the deadline")
	}
	return nil
}

func msg(body string) *broker.Message {
	return &broker.Message{Body: []byte(body), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
		Properties: broker.Properties{DeliveryMode: 2}}
}
