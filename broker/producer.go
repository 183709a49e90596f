package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrNoBackend is returned by AsyncResult methods when no result backend
// was configured.
var ErrNoBackend = errors.New("broker: no result backend configured")

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	// Broker publishes the messages. Required.
	Broker Broker
	// Backend is where AsyncResult reads results; optional.
	Backend ResultBackend
	// DefaultQueue is Celery's task_default_queue. Default "celery".
	DefaultQueue string
	// Queues declares queues with non-default arguments (x-max-priority,
	// x-queue-type), keyed by name, as the Celery side's task_queues does.
	Queues map[string]Queue
	// Routes maps task names to queues like Celery's task_routes; the first
	// matching route wins.
	Routes []Route
	// Serializer is "json" (default) or "msgpack".
	Serializer string
	// Compression: "", "gzip", "zstd" or "brotli".
	Compression string
	// ReplyTo is the client id put in every message's reply_to (Celery's
	// "oid"); RPC results come back to a queue of that name. Default: a
	// fresh UUID.
	ReplyTo string
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock for countdowns; nil means time.Now.
	Now func() time.Time
	// Hooks observe each send (events, metrics); optional.
	OnSent func(t *Task, queue, exchange, routingKey string)
}

// Route sends tasks whose name matches Pattern (an exact name or a glob
// such as "reports.*") to a queue.
type Route struct {
	Pattern    string
	Queue      string
	Exchange   string
	RoutingKey string
	Priority   *uint8
}

// Producer sends tasks by name, like Celery's send_task.
type Producer struct {
	cfg      ProducerConfig
	log      *slog.Logger
	declared sync.Map // queue name -> struct{}
	warned   sync.Map
}

// NewProducer returns a Producer; it is safe for concurrent use.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if cfg.Broker == nil {
		return nil, errors.New("broker: ProducerConfig.Broker is required")
	}
	if cfg.DefaultQueue == "" {
		cfg.DefaultQueue = "celery"
	}
	switch cfg.Serializer {
	case "":
		cfg.Serializer = SerializerJSON
	case SerializerJSON, SerializerMsgpack:
	default:
		return nil, fmt.Errorf("broker: ProducerConfig.Serializer %q: use json or msgpack", cfg.Serializer)
	}
	if _, _, err := Compress(cfg.Compression, nil); err != nil {
		return nil, fmt.Errorf("broker: ProducerConfig.Compression: %w", err)
	}
	for i, r := range cfg.Routes {
		if r.Pattern == "" || (r.Queue == "" && r.Exchange == "") {
			return nil, fmt.Errorf("broker: ProducerConfig.Routes[%d] needs a Pattern and a Queue or Exchange", i)
		}
	}
	if rb, ok := cfg.Backend.(ReplyBackend); ok && cfg.ReplyTo == "" {
		cfg.ReplyTo = rb.ReplyTo() // results come back to the backend's queue
	}
	if cfg.ReplyTo == "" {
		cfg.ReplyTo = uuid.NewString()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Producer{cfg: cfg, log: cfg.Logger}, nil
}

// ReplyTo is the client id this producer writes into reply_to.
func (p *Producer) ReplyTo() string { return p.cfg.ReplyTo }

// Backend returns the configured result backend, or nil.
func (p *Producer) Backend() ResultBackend { return p.cfg.Backend }

// Broker returns the broker the producer publishes to.
func (p *Producer) Broker() Broker { return p.cfg.Broker }

// SendOption sets one option of a send, like an apply_async keyword.
type SendOption func(*sendOptions)

type sendOptions struct {
	task        Task
	countdown   *time.Duration
	expiresIn   *time.Duration
	queue       string
	exchange    string
	routingKey  string
	priority    *uint8
	serializer  string
	compression *string
}

// WithTaskID sets the task id (default: a new UUID).
func WithTaskID(id string) SendOption { return func(o *sendOptions) { o.task.ID = id } }

// WithCountdown delays execution by d from now.
func WithCountdown(d time.Duration) SendOption { return func(o *sendOptions) { o.countdown = &d } }

// WithETA sets the earliest execution time.
func WithETA(t time.Time) SendOption { return func(o *sendOptions) { o.task.ETA = &t } }

// WithExpires makes the task expire d after it is sent.
func WithExpires(d time.Duration) SendOption { return func(o *sendOptions) { o.expiresIn = &d } }

// WithExpiresAt makes the task expire at t.
func WithExpiresAt(t time.Time) SendOption { return func(o *sendOptions) { o.task.Expires = &t } }

// WithQueue sends to the named queue (overriding routes).
func WithQueue(q string) SendOption { return func(o *sendOptions) { o.queue = q } }

// WithExchange publishes to a named exchange with a routing key.
func WithExchange(exchange, routingKey string) SendOption {
	return func(o *sendOptions) { o.exchange, o.routingKey = exchange, routingKey }
}

// WithRoutingKey sets the routing key.
func WithRoutingKey(rk string) SendOption { return func(o *sendOptions) { o.routingKey = rk } }

// WithPriority sets the message priority (0–255 on AMQP, 0–9 on Redis).
func WithPriority(pr uint8) SendOption { return func(o *sendOptions) { o.priority = &pr } }

// WithHeaders adds custom headers, as apply_async(headers=…) does.
func WithHeaders(h map[string]any) SendOption {
	return func(o *sendOptions) {
		if o.task.Headers == nil {
			o.task.Headers = map[string]any{}
		}
		maps.Copy(o.task.Headers, h)
	}
}

// WithSerializer picks "json" or "msgpack" for this message.
func WithSerializer(s string) SendOption { return func(o *sendOptions) { o.serializer = s } }

// WithCompression picks a compression for this message.
func WithCompression(c string) SendOption { return func(o *sendOptions) { o.compression = &c } }

// WithIgnoreResult asks the worker not to store the result.
func WithIgnoreResult() SendOption { return func(o *sendOptions) { o.task.IgnoreResult = true } }

// WithTimeLimit sets hard and soft time limits (0 = unset).
func WithTimeLimit(hard, soft time.Duration) SendOption {
	return func(o *sendOptions) {
		o.task.TimeLimit = [2]*float64{secondsPtr(hard), secondsPtr(soft)}
	}
}

func secondsPtr(d time.Duration) *float64 {
	if d <= 0 {
		return nil
	}
	f := d.Seconds()
	return &f
}

// WithLink adds a success callback (link).
func WithLink(s *Signature) SendOption {
	return func(o *sendOptions) { o.task.Callbacks = append(o.task.Callbacks, *s) }
}

// WithLinkError adds an error callback (link_error).
func WithLinkError(s *Signature) SendOption {
	return func(o *sendOptions) { o.task.Errbacks = append(o.task.Errbacks, *s) }
}

// WithParent marks the task as sent from inside another task.
func WithParent(parentID, rootID string) SendOption {
	return func(o *sendOptions) { o.task.ParentID, o.task.RootID = parentID, rootID }
}

// WithShadow sets the display name used in logs and events.
func WithShadow(name string) SendOption { return func(o *sendOptions) { o.task.Shadow = name } }

// WithTask copies canvas and bookkeeping fields from t: group, chord,
// chain, retries, callbacks. Used by the worker for retries and canvas.
func WithTask(t *Task) SendOption {
	return func(o *sendOptions) {
		id := o.task.ID
		o.task = *t
		if id != "" {
			o.task.ID = id
		}
	}
}

// Send publishes a task by name and returns its AsyncResult.
func (p *Producer) Send(ctx context.Context, name string, args []any, kwargs map[string]any, opts ...SendOption) (*AsyncResult, error) {
	var o sendOptions
	for _, f := range opts {
		f(&o)
	}
	t := &o.task
	t.Name = name
	if args != nil || t.Args == nil {
		t.Args = args
	}
	if kwargs != nil || t.Kwargs == nil {
		t.Kwargs = kwargs
	}
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	if t.RootID == "" {
		t.RootID = t.ID
	}
	now := p.cfg.Now()
	if o.countdown != nil {
		eta := now.Add(*o.countdown).UTC()
		t.ETA = &eta
	}
	if o.expiresIn != nil {
		exp := now.Add(*o.expiresIn).UTC()
		t.Expires = &exp
	}
	if t.ReplyTo == "" {
		t.ReplyTo = p.cfg.ReplyTo
	}
	t.Origin = ""
	queue, exchange, rk, prio := p.route(name, &o)
	if prio != nil {
		t.Priority = *prio
	}
	ser := p.cfg.Serializer
	if o.serializer != "" {
		ser = o.serializer
	}
	comp := p.cfg.Compression
	if o.compression != nil {
		comp = *o.compression
	}
	msg, err := EncodeTask(t, EncodeOptions{Serializer: ser, Compression: comp, Now: p.cfg.Now})
	if err != nil {
		return nil, err
	}
	if rb, ok := p.cfg.Backend.(ReplyBackend); ok && !t.IgnoreResult && t.ReplyTo == rb.ReplyTo() {
		if err := rb.OnTaskSend(ctx); err != nil {
			return nil, fmt.Errorf("broker: send %s[%s]: preparing the reply queue: %w", name, t.ID, err)
		}
	}
	if err := p.Publish(ctx, msg, queue, exchange, rk); err != nil {
		return nil, fmt.Errorf("broker: send %s[%s]: %w", name, t.ID, err)
	}
	if p.cfg.OnSent != nil {
		p.cfg.OnSent(t, queue, exchange, rk)
	}
	return p.Result(t.ID), nil
}

// Publish sends an encoded message to a queue (through the default
// exchange) or to an exchange with a routing key, declaring the queue the
// first time as Celery does.
func (p *Producer) Publish(ctx context.Context, msg *Message, queue, exchange, routingKey string) error {
	if queue != "" {
		if err := p.declare(ctx, queue); err != nil {
			return err
		}
	}
	if exchange == "" {
		routingKey = queue
	}
	return p.cfg.Broker.Publish(ctx, Publishing{Exchange: exchange, RoutingKey: routingKey, Message: msg})
}

// QueueFor returns the queue declaration used for name.
func (p *Producer) QueueFor(name string) Queue {
	if q, ok := p.cfg.Queues[name]; ok {
		return q
	}
	return TaskQueue(name)
}

func (p *Producer) declare(ctx context.Context, queue string) error {
	if _, ok := p.declared.Load(queue); ok {
		return nil
	}
	if err := p.cfg.Broker.Declare(ctx, p.QueueFor(queue)); err != nil {
		var mm *DeclareMismatchError
		if !errors.As(err, &mm) {
			return err
		}
		// The queue exists with other arguments (declared by another
		// deployment's settings): publishing to it still works.
		if _, seen := p.warned.LoadOrStore(queue, true); !seen {
			p.log.Warn("queue exists with different arguments; publishing to it as it is", "queue", queue, "error", err)
		}
	}
	p.declared.Store(queue, struct{}{})
	return nil
}

func (p *Producer) route(name string, o *sendOptions) (queue, exchange, rk string, prio *uint8) {
	prio = o.priority
	if o.queue != "" || o.exchange != "" {
		return o.queue, o.exchange, o.routingKey, prio
	}
	for _, r := range p.cfg.Routes {
		if globMatch(r.Pattern, name) {
			if prio == nil {
				prio = r.Priority
			}
			rk := r.RoutingKey
			if o.routingKey != "" {
				rk = o.routingKey
			}
			return r.Queue, r.Exchange, rk, prio
		}
	}
	return p.cfg.DefaultQueue, "", o.routingKey, prio
}

// globMatch is fnmatch as Celery's glob routes use it: '*' matches any run
// of characters (dots included), '?' one character.
func globMatch(pattern, s string) bool {
	if pattern == s {
		return true
	}
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// DeclareMismatchError is returned by Declare when the entity exists with
// different flags or arguments (AMQP 406 PRECONDITION_FAILED).
type DeclareMismatchError struct {
	Name string
	Err  error
}

func (e *DeclareMismatchError) Error() string {
	return fmt.Sprintf("broker: %q exists with different arguments: %v", e.Name, e.Err)
}

func (e *DeclareMismatchError) Unwrap() error { return e.Err }
