package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/celeriac/celeriac/broker"
)

func init() {
	broker.RegisterBackend(func(ctx context.Context, rawURL string, opts broker.BackendOptions) (broker.ResultBackend, error) {
		return New(Config{Broker: opts.Broker, Expires: opts.Expires, Serializer: opts.Serializer, Logger: opts.Logger})
	}, "rpc")
}

// ErrNoBroker is returned by New without a broker connection.
var ErrNoBroker = errors.New("rpc: Config.Broker is required (rpc:// sends results through the broker)")

// Config configures a Backend.
type Config struct {
	// Broker carries the results. Required.
	Broker broker.Broker
	// ReplyTo names the reply queue (Celery's oid). Default: a new UUID.
	ReplyTo string
	// Expires is the reply queue's x-expires (Celery's result_expires).
	// Default one day; negative means none.
	Expires time.Duration
	// Serializer of result messages: "json" (default) or "msgpack".
	Serializer string
	// Persistent sends results with delivery_mode 2 (result_persistent).
	Persistent bool
	// MaxPending bounds the task states kept in memory. Default 10000.
	MaxPending int
	Logger     *slog.Logger
}

// Backend is the RPC result backend. It implements broker.ReplyBackend.
type Backend struct {
	cfg Config
	log *slog.Logger

	startMu sync.Mutex // serializes starting the consumer
	cons    broker.Consumer
	wg      sync.WaitGroup

	mu      sync.Mutex
	states  map[string]*broker.ResultMeta
	order   []string // arrival order, for eviction
	changed chan struct{}
	closed  bool
}

// New returns a Backend; the reply queue is declared on first use.
func New(cfg Config) (*Backend, error) {
	if cfg.Broker == nil {
		return nil, ErrNoBroker
	}
	switch cfg.Serializer {
	case "":
		cfg.Serializer = broker.SerializerJSON
	case broker.SerializerJSON, broker.SerializerMsgpack:
	default:
		return nil, fmt.Errorf("rpc: Config.Serializer %q: use json or msgpack", cfg.Serializer)
	}
	if cfg.ReplyTo == "" {
		cfg.ReplyTo = uuid.NewString()
	}
	if cfg.Expires == 0 {
		cfg.Expires = 24 * time.Hour
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 10000
	}
	if cfg.MaxPending < 0 {
		return nil, fmt.Errorf("rpc: Config.MaxPending %d is negative", cfg.MaxPending)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{cfg: cfg, log: cfg.Logger, states: map[string]*broker.ResultMeta{}, changed: make(chan struct{})}, nil
}

// ReplyTo is the reply queue's name, to put in tasks' reply_to.
func (b *Backend) ReplyTo() string { return b.cfg.ReplyTo }

// Queue is the reply queue as Celery declares it.
func (b *Backend) Queue() broker.Queue {
	q := broker.Queue{Name: b.cfg.ReplyTo, RoutingKey: b.cfg.ReplyTo, AutoDelete: true}
	if b.cfg.Expires > 0 {
		q.Args = map[string]any{"x-expires": b.cfg.Expires.Milliseconds()}
	}
	return q
}

// Store sends meta to the task's reply queue, as Celery's
// RPCBackend.store_result does; with no reply_to it does nothing.
func (b *Backend) Store(ctx context.Context, meta *broker.ResultMeta) error {
	if meta.ReplyTo == "" {
		return nil
	}
	children := meta.Children
	if children == nil {
		children = []any{}
	}
	var tb any
	if meta.Traceback != nil {
		tb = *meta.Traceback
	}
	doc := map[string]any{
		"task_id":   meta.TaskID,
		"status":    string(meta.Status),
		"result":    meta.Result,
		"traceback": tb,
		"children":  children,
	}
	body, ct, ce, err := broker.Marshal(b.cfg.Serializer, doc)
	if err != nil {
		return fmt.Errorf("rpc: encoding the result of %s: %w", meta.TaskID, err)
	}
	corr := meta.CorrelationID
	if corr == "" {
		corr = meta.TaskID
	}
	mode := uint8(1)
	if b.cfg.Persistent {
		mode = 2
	}
	msg := &broker.Message{Body: body, ContentType: ct, ContentEncoding: ce, Headers: map[string]any{},
		Properties: broker.Properties{CorrelationID: corr, DeliveryMode: mode}}
	if err := b.cfg.Broker.Publish(ctx, broker.Publishing{RoutingKey: meta.ReplyTo, Message: msg}); err != nil {
		return fmt.Errorf("rpc: sending the result of %s to %s: %w", meta.TaskID, meta.ReplyTo, err)
	}
	return nil
}

// OnTaskSend declares the reply queue and starts consuming it, once.
func (b *Backend) OnTaskSend(ctx context.Context) error { return b.start(ctx) }

func (b *Backend) start(ctx context.Context) error {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.cons != nil {
		return nil
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return broker.ErrClosed
	}
	c, err := b.cfg.Broker.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{b.Queue()}, NoAck: true, Tag: "rpc-" + b.cfg.ReplyTo})
	if err != nil {
		return fmt.Errorf("rpc: consuming reply queue %s: %w", b.cfg.ReplyTo, err)
	}
	b.cons = c
	b.wg.Add(1)
	go b.receive(c)
	return nil
}

func (b *Backend) receive(c broker.Consumer) {
	defer b.wg.Done()
	for d := range c.Deliveries() {
		_ = d.Ack(context.Background()) // no-ack: settles locally
		v, err := broker.Unmarshal(d.Message.ContentType, d.Message.Body)
		if err != nil {
			b.log.Warn("rpc: undecodable result message dropped", "err", err, "correlation_id", d.Message.Properties.CorrelationID)
			continue
		}
		meta, err := broker.MetaFromMap(v)
		if err != nil {
			b.log.Warn("rpc: result message is not a result", "err", err, "correlation_id", d.Message.Properties.CorrelationID)
			continue
		}
		id := d.Message.Properties.CorrelationID // Celery reads this first
		if id == "" {
			id = meta.TaskID
		}
		if meta.TaskID == "" {
			meta.TaskID = id
		}
		meta.ContentType = d.Message.ContentType
		b.put(id, meta)
	}
}

// put keeps the latest state per task, evicting the oldest beyond MaxPending.
func (b *Backend) put(id string, meta *broker.ResultMeta) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.states[id]; !ok {
		b.order = append(b.order, id)
	}
	b.states[id] = meta
	for len(b.order) > b.cfg.MaxPending {
		old := b.order[0]
		b.order = b.order[1:]
		delete(b.states, old)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// Get returns the latest state received for taskID; PENDING if none. It
// does not start consuming (a worker checking a state must not create a
// reply queue); sending through a Producer or Wait does.
func (b *Backend) Get(ctx context.Context, taskID string) (*broker.ResultMeta, error) {
	m, _ := b.lookup(taskID)
	return m, nil
}

func (b *Backend) lookup(taskID string) (*broker.ResultMeta, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.states[taskID]; ok {
		c := *m
		return &c, b.changed
	}
	return &broker.ResultMeta{TaskID: taskID, Status: broker.StatePending}, b.changed
}

// Wait blocks until taskID's result arrives in a ready state.
func (b *Backend) Wait(ctx context.Context, taskID string) (*broker.ResultMeta, error) {
	if err := b.start(ctx); err != nil {
		return nil, err
	}
	for {
		m, changed := b.lookup(taskID)
		if m.Status.Ready() {
			return m, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return nil, broker.ErrClosed
		}
	}
}

// Forget drops the state kept for taskID.
func (b *Backend) Forget(ctx context.Context, taskID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.states, taskID)
	for i, id := range b.order {
		if id == taskID {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
	return nil
}

// Close stops consuming the reply queue. The broker stays open.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	b.startMu.Lock()
	c := b.cons
	b.startMu.Unlock()
	var err error
	if c != nil {
		err = c.Cancel(context.Background())
	}
	b.wg.Wait()
	return err
}

var _ broker.ReplyBackend = (*Backend)(nil)
