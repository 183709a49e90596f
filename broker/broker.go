package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Sentinel errors shared by every transport.
var (
	// ErrClosed is returned by calls on a broker, consumer or delivery after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrAcknowledged is returned when a delivery is acked or rejected twice.
	ErrAcknowledged = errors.New("broker: delivery already acknowledged")
	// ErrStaleDelivery is returned when acking a delivery whose connection has
	// since been lost; the broker has already requeued the message.
	ErrStaleDelivery = errors.New("broker: delivery belongs to a lost connection")
	// ErrUnknownScheme is returned by Open for a URL no transport registered.
	ErrUnknownScheme = errors.New("broker: unknown URL scheme")
	// ErrNotConfirmed is returned when the broker refused (nacked) a publish.
	ErrNotConfirmed = errors.New("broker: publish not confirmed")
	// ErrUnroutable is returned when a publish matched no queue.
	ErrUnroutable = errors.New("broker: message unroutable")
)

// Exchange describes an exchange as Celery/kombu declares it.
type Exchange struct {
	Name       string
	Kind       string // "direct", "topic", "fanout" or "headers"
	Durable    bool
	AutoDelete bool
	Args       map[string]any
}

// Queue describes a queue and its binding as Celery/kombu declares them. A
// queue with an empty Exchange.Name is reachable only through the default
// exchange (routing key = queue name).
type Queue struct {
	Name       string
	Exchange   Exchange
	RoutingKey string
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       map[string]any // x-max-priority, x-queue-type, x-expires, x-message-ttl, x-dead-letter-exchange…
}

// TaskQueue is the queue Celery 5.2.6 declares for a task queue named name:
// a durable queue bound with key name to a durable direct exchange of the same
// name. Use WithArgs to add x-max-priority or x-queue-type, as the Celery
// side's task_queues setting does.
func TaskQueue(name string) Queue {
	return Queue{
		Name:       name,
		Exchange:   Exchange{Name: name, Kind: "direct", Durable: true},
		RoutingKey: name,
		Durable:    true,
	}
}

// WithArgs returns a copy of q with the given queue arguments added.
func (q Queue) WithArgs(args map[string]any) Queue {
	m := make(map[string]any, len(q.Args)+len(args))
	for k, v := range q.Args {
		m[k] = v
	}
	for k, v := range args {
		m[k] = v
	}
	q.Args = m
	return q
}

// IsQuorum reports whether q is declared as a RabbitMQ quorum queue.
func (q Queue) IsQuorum() bool {
	v, _ := q.Args["x-queue-type"].(string)
	return v == "quorum"
}

// Publishing is one message to send.
type Publishing struct {
	Exchange   string // "" is the default exchange: RoutingKey names the queue
	RoutingKey string
	Message    *Message
}

// ConsumeOptions configures a Consumer.
type ConsumeOptions struct {
	Queues []Queue
	// Prefetch bounds the number of unacknowledged deliveries in flight
	// (AMQP basic.qos). Zero means unlimited.
	Prefetch int
	// NoAck consumes without acknowledgements: for events and remote control.
	NoAck bool
	// Tag names the consumer in the broker's management views.
	Tag string
}

// Broker is the consumer-side view of a message broker, modelled on kombu's
// entities so that Celery's topology (task queues, the celeryev and pidbox
// exchanges, reply queues) maps onto every transport the same way.
//
// Implementations are safe for concurrent use and reconnect by themselves:
// a call made while the connection is down waits for it (bounded by ctx).
type Broker interface {
	// Declare declares q, its exchange and binding exactly as described.
	Declare(ctx context.Context, q Queue) error
	// DeclareExchange declares ex alone.
	DeclareExchange(ctx context.Context, ex Exchange) error
	// Publish sends p and returns once the broker has taken responsibility
	// for it (publisher confirm on AMQP).
	Publish(ctx context.Context, p Publishing) error
	// PublishAt sends p so that it is routed no earlier than at (to the
	// second), keeping it in the broker meanwhile: it survives worker and
	// broker restarts and costs the worker no memory.
	PublishAt(ctx context.Context, p Publishing, at time.Time) error
	// Consume starts a consumer on opts.Queues, declaring them first.
	Consume(ctx context.Context, opts ConsumeOptions) (Consumer, error)
	// Inspect reports a queue's size; ErrQueueNotFound if it does not exist.
	Inspect(ctx context.Context, queue string) (QueueInfo, error)
	// Purge removes all ready messages from queue and returns how many.
	Purge(ctx context.Context, queue string) (int, error)
	// Close closes connections. Unacked deliveries go back to their queues.
	Close() error
}

// Pinger is implemented by transports and result backends that can check
// their connection cheaply; health checks use it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrQueueNotFound is returned by Inspect for a queue that does not exist.
var ErrQueueNotFound = errors.New("broker: queue not found")

// QueueInfo is a queue's state as the broker reports it.
type QueueInfo struct {
	Name      string
	Messages  int // ready messages
	Consumers int
}

// Consumer receives deliveries from one or more queues.
type Consumer interface {
	// Deliveries returns the channel deliveries arrive on. It is closed
	// after Cancel, or when the broker is closed.
	Deliveries() <-chan *Delivery
	// AddQueue starts consuming q too (declaring it first).
	AddQueue(ctx context.Context, q Queue) error
	// CancelQueue stops consuming the named queue.
	CancelQueue(ctx context.Context, name string) error
	// Queues lists the queues being consumed.
	Queues() []Queue
	// SetPrefetch changes the prefetch limit, e.g. to make room while ETA
	// tasks are held unacknowledged.
	SetPrefetch(ctx context.Context, n int) error
	// Cancel stops delivery and closes Deliveries(). Deliveries already
	// received can still be acked or rejected until the broker is closed.
	Cancel(ctx context.Context) error
}

// Acknowledger settles a delivery with its transport.
type Acknowledger interface {
	Ack(ctx context.Context) error
	Reject(ctx context.Context, requeue bool) error
}

// Delivery is one message received from a queue.
type Delivery struct {
	Message     *Message
	Queue       string // the queue it was consumed from
	Exchange    string // exchange it was published to
	RoutingKey  string
	Redelivered bool
	// Received is when the consumer got the message.
	Received time.Time

	acker Acknowledger
	once  sync.Mutex
	done  bool
}

// NewDelivery is for transports: it wraps a message and its acknowledger.
func NewDelivery(m *Message, queue, exchange, routingKey string, redelivered bool, a Acknowledger) *Delivery {
	return &Delivery{Message: m, Queue: queue, Exchange: exchange, RoutingKey: routingKey,
		Redelivered: redelivered, Received: time.Now(), acker: a}
}

func (d *Delivery) settle(ctx context.Context, f func(Acknowledger) error) error {
	d.once.Lock()
	defer d.once.Unlock()
	if d.done {
		return ErrAcknowledged
	}
	if d.acker == nil { // no-ack consumer: nothing to settle
		d.done = true
		return nil
	}
	if err := f(d.acker); err != nil {
		// A stale delivery is settled in effect: the broker has requeued it.
		if errors.Is(err, ErrStaleDelivery) {
			d.done = true
		}
		return err
	}
	d.done = true
	return nil
}

// Ack acknowledges the delivery: the broker forgets the message.
func (d *Delivery) Ack(ctx context.Context) error {
	return d.settle(ctx, func(a Acknowledger) error { return a.Ack(ctx) })
}

// Reject refuses the delivery; with requeue the broker delivers it again,
// without it the message is dropped or dead-lettered.
func (d *Delivery) Reject(ctx context.Context, requeue bool) error {
	return d.settle(ctx, func(a Acknowledger) error { return a.Reject(ctx, requeue) })
}

// Settled reports whether Ack or Reject has succeeded.
func (d *Delivery) Settled() bool {
	d.once.Lock()
	defer d.once.Unlock()
	return d.done
}

// Options are transport settings shared by every scheme.
type Options struct {
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Name identifies the connection to the broker (AMQP connection_name).
	Name string
	// ConnectTimeout bounds each dial attempt. Default 10 s.
	ConnectTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval. Default 60 s.
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay. Defaults 100 ms, 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Hooks lets callers count connection events (metrics).
	Hooks Hooks
}

// Hooks are optional callbacks for connection events.
type Hooks struct {
	OnReconnect  func(url string)
	OnDisconnect func(err error)
}

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 60 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	return o
}

// OpenFunc opens a transport for a list of failover URLs of one scheme.
type OpenFunc func(ctx context.Context, urls []string, opts Options) (Broker, error)

// registered is one Register call: a transport and its schemes.
type registered struct {
	open OpenFunc
	id   int
}

var (
	regMu      sync.RWMutex
	transports = map[string]registered{}
	regCount   int
)

// Register makes a transport available to Open under the given URL schemes.
// Transport packages call it from init. The schemes of one call are one
// transport: a failover list may mix them (amqp, amqps, pyamqp).
func Register(open OpenFunc, schemes ...string) {
	regMu.Lock()
	defer regMu.Unlock()
	regCount++
	for _, s := range schemes {
		transports[s] = registered{open: open, id: regCount}
	}
}

// Schemes lists the registered URL schemes.
func Schemes() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for s := range transports {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// SplitURLs splits Celery's failover form "amqp://a//;amqp://b//" into URLs.
func SplitURLs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Open opens the transport chosen by the URL's scheme. rawURLs may hold
// several URLs separated by ';' (Celery's failover list); all must share a
// transport. The transport package must be linked in (imported).
func Open(ctx context.Context, rawURLs string, opts Options) (Broker, error) {
	urls := SplitURLs(rawURLs)
	if len(urls) == 0 {
		return nil, fmt.Errorf("broker: no broker URL given")
	}
	var first registered
	var scheme0 string
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("broker: bad URL %q: %w", Redact(raw), err)
		}
		regMu.RLock()
		r, ok := transports[u.Scheme]
		regMu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("%w %q in %q (known: %s)", ErrUnknownScheme, u.Scheme, Redact(raw), strings.Join(Schemes(), ", "))
		}
		if i == 0 {
			first, scheme0 = r, u.Scheme
		} else if r.id != first.id {
			return nil, fmt.Errorf("broker: failover URLs mix transports: %q and %q", scheme0, u.Scheme)
		}
	}
	return first.open(ctx, urls, opts.WithDefaults())
}

// Redact hides the password in a URL for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
