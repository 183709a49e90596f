package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// errClosedStale is what settling a delivery returns once the transport is
// closed: broker.ErrClosed, and also broker.ErrStaleDelivery because
// closing the connection has already requeued the message.
var errClosedStale = fmt.Errorf("%w: %w", broker.ErrClosed, broker.ErrStaleDelivery)

var tagSeq atomic.Uint64

// consumer is a broker.Consumer with its own channel, so that its
// per-consumer prefetch (basic.qos global=false, which quorum queues
// require) and its deliveries' acknowledgements concern it alone. After a
// reconnect it declares its queues again and resumes on the new
// connection; deliveries from the old one settle with ErrStaleDelivery.
type consumer struct {
	t     *Transport
	noAck bool
	tag   string
	out   chan *broker.Delivery

	quit     chan struct{}
	quitOnce sync.Once
	stopped  chan struct{} // closed when run has returned and out is closed

	mu       sync.Mutex
	queues   []broker.Queue
	prefetch int
	cur      *attachment // nil while between connections
}

// attachment is the consumer on one channel.
type attachment struct {
	ch     *amqp.Channel
	tags   map[string]string // queue -> consumer tag; guarded by consumer.mu
	closed chan *amqp.Error
	gone   chan struct{} // closed when the channel is unusable
	fwd    sync.WaitGroup
	// unexpected is closed when the broker cancelled one of our consumers
	// (queue deleted): the attachment is rebuilt.
	unexpected     chan struct{}
	unexpectedOnce sync.Once
	// unsettled counts deliveries handed out and not yet settled; once the
	// consumer is cancelled and it reaches zero the channel is closed.
	// Both guarded by consumer.mu.
	unsettled int
	cancelled bool
	// rpc serialises synchronous methods (qos, consume, cancel) on ch:
	// amqp091-go matches replies to callers by arrival order alone, so two
	// at once can take each other's reply ("unexpected command received")
	// and leave a consumer registered that nobody reads, its prefetched
	// messages stranded unacked.
	rpc sync.Mutex
}

func (a *attachment) qos(n int) error {
	a.rpc.Lock()
	defer a.rpc.Unlock()
	return a.ch.Qos(n, 0, false)
}

func (a *attachment) consume(queue, tag string, noAck bool) (<-chan amqp.Delivery, error) {
	a.rpc.Lock()
	defer a.rpc.Unlock()
	return a.ch.Consume(queue, tag, noAck, false, false, false, nil)
}

func (a *attachment) cancel(tag string) error {
	a.rpc.Lock()
	defer a.rpc.Unlock()
	return a.ch.Cancel(tag, false)
}

// Consume implements broker.Broker.
func (t *Transport) Consume(ctx context.Context, opts broker.ConsumeOptions) (broker.Consumer, error) {
	for _, q := range opts.Queues {
		if err := t.Declare(ctx, q); err != nil {
			return nil, err
		}
	}
	tag := opts.Tag
	if tag == "" {
		tag = "celeriac"
	}
	c := &consumer{t: t, noAck: opts.NoAck, tag: tag + "." + strconv.FormatUint(tagSeq.Add(1), 10),
		out: make(chan *broker.Delivery), quit: make(chan struct{}), stopped: make(chan struct{}),
		queues: slices.Clone(opts.Queues), prefetch: opts.Prefetch}
	// Attach before returning so that the consumer is subscribed when
	// Consume returns (a fanout published next must reach it).
	var a *attachment
	for {
		s, err := t.session(ctx)
		if err != nil {
			return nil, err
		}
		a, err = c.attach(s)
		if err == nil {
			break
		}
		var ae *amqp.Error
		if errors.As(err, &ae) && channelException(ae) || errors.Is(err, broker.ErrQueueNotFound) ||
			ctx.Err() != nil || !waitLost(ctx, s) {
			return nil, err
		}
		// Lost meanwhile: declare again on the next connection.
		for _, q := range opts.Queues {
			if err := t.Declare(ctx, q); err != nil {
				return nil, err
			}
		}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = a.ch.Close()
		return nil, broker.ErrClosed
	}
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	go c.run(a)
	return c, nil
}

// attach opens a channel, sets QoS and consumes every queue on it.
func (c *consumer) attach(s *session) (*attachment, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	a := &attachment{ch: ch, tags: map[string]string{}, gone: make(chan struct{}),
		unexpected: make(chan struct{}), closed: ch.NotifyClose(make(chan *amqp.Error, 1))}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.noAck {
		if err := ch.Qos(c.prefetch, 0, false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("amqp: basic.qos: %w", err)
		}
	}
	for _, q := range c.queues {
		if err := c.consumeLocked(a, q.Name); err != nil {
			_ = ch.Close()
			return nil, err
		}
	}
	c.cur = a
	return a, nil
}

func (c *consumer) consumeLocked(a *attachment, queue string) error {
	tag := c.tag + "." + queue + "." + strconv.FormatUint(tagSeq.Add(1), 10)
	if len(tag) > 255 {
		tag = c.tag + "." + strconv.FormatUint(tagSeq.Add(1), 10)
	}
	ds, err := a.consume(queue, tag, c.noAck)
	if err != nil {
		if notFound(err) {
			return fmt.Errorf("%w: %q", broker.ErrQueueNotFound, queue)
		}
		return fmt.Errorf("amqp: consume %q: %w", queue, err)
	}
	a.tags[queue] = tag
	a.fwd.Add(1)
	go c.forward(a, queue, tag, ds)
	return nil
}

// forward hands one queue's deliveries out until the broker stops sending
// them. After Cancel, deliveries still buffered are requeued rather than
// handed out.
func (c *consumer) forward(a *attachment, queue, tag string, ds <-chan amqp.Delivery) {
	defer a.fwd.Done()
	for d := range ds {
		var ack broker.Acknowledger
		if !c.noAck {
			ack = &acker{c: c, a: a, tag: d.DeliveryTag}
		}
		m := toMessage(&d)
		stripDelayHeaders(m.Headers)
		del := broker.NewDelivery(m, queue, d.Exchange, d.RoutingKey, d.Redelivered, ack)
		c.mu.Lock()
		a.unsettled++
		c.mu.Unlock()
		select {
		case c.out <- del:
			if c.noAck {
				c.settled(a)
			}
		case <-c.quit:
			if !c.noAck {
				_ = a.ch.Nack(d.DeliveryTag, false, true)
			}
			c.settled(a)
		case <-a.gone:
			// The channel is gone: the broker has requeued it already.
			c.settled(a)
		}
	}
	// The delivery channel closed: our cancel, the channel's end, or a
	// cancel from the broker (queue deleted) that needs a new attachment.
	c.mu.Lock()
	mine := a.tags[queue] == tag
	c.mu.Unlock()
	if mine {
		select {
		case <-c.quit:
		case <-a.gone:
		default:
			a.unexpectedOnce.Do(func() { close(a.unexpected) })
		}
	}
}

// run keeps the consumer attached across reconnects until it is stopped.
func (c *consumer) run(a *attachment) {
	defer close(c.stopped)
	defer close(c.out)
	defer func() {
		c.t.mu.Lock()
		delete(c.t.consumers, c)
		c.t.mu.Unlock()
	}()
	backoff := c.t.opts.MinBackoff
	for {
		if a != nil {
			select {
			case <-a.closed:
				close(a.gone)
				c.detach(a)
				a.fwd.Wait()
			case <-a.unexpected:
				c.t.log.Warn("amqp: consumer cancelled by the broker; resubscribing", "tag", c.tag)
				close(a.gone)
				c.detach(a)
				_ = a.ch.Close()
				a.fwd.Wait()
				if sleepQuit(c.quit, backoff) {
					return
				}
			case <-c.quit:
				c.cancelAll(a)
				c.awaitForwarders(a)
				c.mu.Lock()
				a.cancelled = true
				idle := a.unsettled == 0
				c.mu.Unlock()
				if idle {
					_ = a.ch.Close()
				}
				return
			}
		}
		ctx, cancel := contextUntil(c.quit)
		s, err := c.t.session(ctx)
		cancel()
		if err != nil {
			return // stopped or transport closed
		}
		c.mu.Lock()
		qs := slices.Clone(c.queues)
		c.mu.Unlock()
		a, err = c.reattach(s, qs)
		if err != nil {
			c.t.log.Warn("amqp: resuming consumer failed", "tag", c.tag, "error", err, "retry_in", backoff)
			a = nil
			if sleepQuit(c.quit, backoff) {
				return
			}
			backoff = min(backoff*2, c.t.opts.MaxBackoff)
			continue
		}
		backoff = c.t.opts.MinBackoff
		c.t.log.Info("amqp: consumer resumed", "tag", c.tag, "url", s.url)
	}
}

func (c *consumer) reattach(s *session, qs []broker.Queue) (*attachment, error) {
	ctx, cancel := contextUntil(c.quit)
	defer cancel()
	for _, q := range qs {
		if err := c.t.Declare(ctx, q); err != nil {
			return nil, err
		}
	}
	return c.attach(s)
}

func (c *consumer) detach(a *attachment) {
	c.mu.Lock()
	if c.cur == a {
		c.cur = nil
	}
	c.mu.Unlock()
}

// cancelAll stops the broker's deliveries; the channel stays open so that
// deliveries already handed out can still be settled.
func (c *consumer) cancelAll(a *attachment) {
	c.mu.Lock()
	tags := make([]string, 0, len(a.tags))
	for _, tag := range a.tags {
		tags = append(tags, tag)
	}
	clear(a.tags)
	c.mu.Unlock()
	for _, tag := range tags {
		// An error means the channel is closing: its delivery channels
		// close with it and its deliveries are requeued. Cancel the
		// others anyway, so none is left open.
		if err := a.cancel(tag); err != nil {
			c.t.log.Debug("amqp: cancelling a consumer", "tag", tag, "error", err)
		}
	}
}

// forwardersGrace bounds how long Cancel waits for the broker to close a
// cancelled consumer's delivery channels before closing the AMQP channel
// itself, so that a consumer never hangs a worker's shutdown.
const forwardersGrace = 5 * time.Second

// awaitForwarders waits for a's forwarding goroutines to end after
// cancelAll. Should the broker never confirm a cancel, the channel is
// closed: its unsettled deliveries go back to the queue, as after a crash.
func (c *consumer) awaitForwarders(a *attachment) {
	done := make(chan struct{})
	go func() { a.fwd.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(forwardersGrace):
	}
	c.t.log.Warn("amqp: a cancelled consumer's deliveries did not stop; closing its channel", "tag", c.tag)
	_ = a.ch.Close()
	<-done
}

// settled notes that one delivery of a is settled (or never will be), and
// closes a cancelled consumer's channel when none remain.
func (c *consumer) settled(a *attachment) {
	c.mu.Lock()
	a.unsettled--
	idle := a.cancelled && a.unsettled == 0
	c.mu.Unlock()
	if idle {
		_ = a.ch.Close()
	}
}

func (c *consumer) stop() { c.quitOnce.Do(func() { close(c.quit) }) }

// Deliveries implements broker.Consumer.
func (c *consumer) Deliveries() <-chan *broker.Delivery { return c.out }

// AddQueue implements broker.Consumer.
func (c *consumer) AddQueue(ctx context.Context, q broker.Queue) error {
	if err := c.t.Declare(ctx, q); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, have := range c.queues {
		if have.Name == q.Name {
			return nil
		}
	}
	if c.isStopped() {
		return broker.ErrClosed
	}
	c.queues = append(c.queues, q)
	if c.cur != nil {
		// On failure the next reattach picks the queue up.
		if err := c.consumeLocked(c.cur, q.Name); err != nil {
			return err
		}
	}
	return nil
}

// CancelQueue implements broker.Consumer.
func (c *consumer) CancelQueue(ctx context.Context, name string) error {
	c.mu.Lock()
	c.queues = slices.DeleteFunc(c.queues, func(q broker.Queue) bool { return q.Name == name })
	a := c.cur
	var tag string
	if a != nil {
		tag = a.tags[name]
		delete(a.tags, name)
	}
	c.mu.Unlock()
	if tag != "" {
		if err := a.cancel(tag); err != nil && !a.ch.IsClosed() {
			return fmt.Errorf("amqp: cancel %q: %w", name, err)
		}
	}
	return nil
}

// Queues implements broker.Consumer.
func (c *consumer) Queues() []broker.Queue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queues)
}

// SetPrefetch implements broker.Consumer. RabbitMQ applies a per-consumer
// prefetch only to consumers started after basic.qos, so each queue gets
// a fresh consumer; the old one's buffered deliveries are still handed out.
func (c *consumer) SetPrefetch(ctx context.Context, n int) error {
	if c.noAck {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prefetch == n {
		return nil
	}
	c.prefetch = n
	a := c.cur
	if a == nil {
		return nil // applied on reattach
	}
	if err := a.qos(n); err != nil {
		return fmt.Errorf("amqp: basic.qos: %w", err)
	}
	for _, q := range c.queues {
		old := a.tags[q.Name]
		if err := c.consumeLocked(a, q.Name); err != nil {
			return err
		}
		if old != "" {
			// Cancel blocks for a round trip, and the forwarder of the old
			// tag takes c.mu when it ends; release it meanwhile.
			c.mu.Unlock()
			err := a.cancel(old)
			c.mu.Lock()
			if err != nil {
				return fmt.Errorf("amqp: re-consume %q: %w", q.Name, err)
			}
		}
	}
	return nil
}

// Cancel implements broker.Consumer.
func (c *consumer) Cancel(ctx context.Context) error {
	c.stop()
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *consumer) isStopped() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// acker settles one delivery on the channel it came from.
type acker struct {
	c   *consumer
	a   *attachment
	tag uint64
}

func (k *acker) settle(ctx context.Context, f func() error) error {
	if k.c.t.isClosed() {
		return errClosedStale
	}
	select {
	case <-k.a.gone:
		return broker.ErrStaleDelivery
	default:
	}
	if k.a.ch.IsClosed() {
		return broker.ErrStaleDelivery
	}
	if err := f(); err != nil {
		if k.a.ch.IsClosed() {
			return broker.ErrStaleDelivery
		}
		// A write error: the channel is about to be declared closed.
		timer := time.NewTimer(lostWait)
		defer timer.Stop()
		select {
		case <-k.a.gone:
			return broker.ErrStaleDelivery
		case <-timer.C:
		case <-ctx.Done():
		}
		if k.a.ch.IsClosed() {
			return broker.ErrStaleDelivery
		}
		return fmt.Errorf("amqp: settle: %w", err)
	}
	k.c.settled(k.a)
	return nil
}

func (k *acker) Ack(ctx context.Context) error {
	return k.settle(ctx, func() error { return k.a.ch.Ack(k.tag, false) })
}

func (k *acker) Reject(ctx context.Context, requeue bool) error {
	return k.settle(ctx, func() error { return k.a.ch.Reject(k.tag, requeue) })
}

// contextUntil is a context cancelled when quit closes.
func contextUntil(quit <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func sleepQuit(quit <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return false
	case <-quit:
		return true
	}
}
