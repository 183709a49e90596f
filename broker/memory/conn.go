package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
)

var _ broker.Broker = (*Conn)(nil)

// Conn is one connection to a Server; it implements broker.Broker.
type Conn struct {
	srv *Server

	mu        sync.Mutex
	closed    bool
	unacked   map[*ack]struct{}
	consumers []*consumer
	done      chan struct{}
	wg        sync.WaitGroup
}

// Declare implements broker.Broker.
func (c *Conn) Declare(ctx context.Context, q broker.Queue) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.srv.declareLocked(q)
}

// DeclareExchange implements broker.Broker.
func (c *Conn) DeclareExchange(ctx context.Context, ex broker.Exchange) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.srv.declareExchangeLocked(ex)
}

func (c *Conn) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return broker.ErrClosed
	}
	return nil
}

// Publish implements broker.Broker.
func (c *Conn) Publish(ctx context.Context, p broker.Publishing) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.srv.publishLocked(p)
}

// PublishAt implements broker.Broker: the server holds the message and
// routes it at the given time.
func (c *Conn) PublishAt(ctx context.Context, p broker.Publishing, at time.Time) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	p.Message = p.Message.Clone()
	s := c.srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
			s.mu.Lock()
			_ = s.publishLocked(p)
			s.mu.Unlock()
		case <-s.stop:
		}
	}()
	return nil
}

// Inspect implements broker.Broker.
func (c *Conn) Inspect(ctx context.Context, name string) (broker.QueueInfo, error) {
	if err := c.check(ctx); err != nil {
		return broker.QueueInfo{}, err
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	q, ok := c.srv.queues[name]
	if !ok {
		return broker.QueueInfo{}, broker.ErrQueueNotFound
	}
	return broker.QueueInfo{Name: name, Messages: len(q.ready), Consumers: q.consumer}, nil
}

// Purge implements broker.Broker.
func (c *Conn) Purge(ctx context.Context, name string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	q, ok := c.srv.queues[name]
	if !ok {
		return 0, broker.ErrQueueNotFound
	}
	n := len(q.ready)
	q.ready = nil
	return n, nil
}

// Close implements broker.Broker: consumers stop and every unacknowledged
// delivery goes back to its queue, marked redelivered.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	consumers := c.consumers
	c.mu.Unlock()
	for _, co := range consumers {
		co.stop()
	}
	c.wg.Wait()
	c.mu.Lock()
	pending := make([]*ack, 0, len(c.unacked))
	for a := range c.unacked {
		pending = append(pending, a)
	}
	c.unacked = map[*ack]struct{}{}
	c.mu.Unlock()
	slices.SortFunc(pending, func(a, b *ack) int { return int(a.e.seq - b.e.seq) })
	c.srv.mu.Lock()
	for _, a := range pending {
		a.requeueLocked()
	}
	c.srv.notifyLocked()
	c.srv.mu.Unlock()
	return nil
}

// Consume implements broker.Broker.
func (c *Conn) Consume(ctx context.Context, opts broker.ConsumeOptions) (broker.Consumer, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	for _, q := range opts.Queues {
		if err := c.Declare(ctx, q); err != nil {
			return nil, err
		}
	}
	co := &consumer{conn: c, noAck: opts.NoAck, prefetch: opts.Prefetch,
		out: make(chan *broker.Delivery), quit: make(chan struct{})}
	c.srv.mu.Lock()
	for _, q := range opts.Queues {
		co.queues = append(co.queues, q)
		c.srv.queues[q.Name].consumer++
	}
	c.srv.mu.Unlock()
	c.mu.Lock()
	c.consumers = append(c.consumers, co)
	c.mu.Unlock()
	c.wg.Add(1)
	go co.loop()
	return co, nil
}

type consumer struct {
	conn     *Conn
	noAck    bool
	out      chan *broker.Delivery
	quit     chan struct{}
	stopOnce sync.Once

	// guarded by conn.srv.mu
	queues   []broker.Queue
	prefetch int
	inflight int
	next     int // round-robin position across queues
}

func (co *consumer) loop() {
	defer co.conn.wg.Done()
	defer close(co.out)
	s := co.conn.srv
	for {
		s.mu.Lock()
		var e *entry
		var qname string
		if co.prefetch == 0 || co.inflight < co.prefetch {
			for i := range co.queues {
				k := (co.next + i) % len(co.queues)
				if q, ok := s.queues[co.queues[k].Name]; ok {
					if e = s.popLocked(q); e != nil {
						qname = q.decl.Name
						co.next = k + 1
						break
					}
				}
			}
		}
		wait := s.changed
		if e != nil && !co.noAck {
			co.inflight++
		}
		s.mu.Unlock()
		if e == nil {
			select {
			case <-wait:
				continue
			case <-co.quit:
				return
			}
		}
		var a *ack
		if !co.noAck {
			a = &ack{co: co, e: e, queue: qname}
			co.conn.mu.Lock()
			co.conn.unacked[a] = struct{}{}
			co.conn.mu.Unlock()
		}
		d := broker.NewDelivery(e.msg, qname, e.exchange, e.routingKey, e.redelivered, nilIfNoAck(a))
		select {
		case co.out <- d:
		case <-co.quit:
			if a != nil {
				// Not handed out: put it back as if never delivered.
				_ = a.settle(true, false)
			}
			return
		}
	}
}

func nilIfNoAck(a *ack) broker.Acknowledger {
	if a == nil {
		return nil
	}
	return a
}

func (co *consumer) stop() { co.stopOnce.Do(func() { close(co.quit) }) }

func (co *consumer) Deliveries() <-chan *broker.Delivery { return co.out }

func (co *consumer) AddQueue(ctx context.Context, q broker.Queue) error {
	if err := co.conn.Declare(ctx, q); err != nil {
		return err
	}
	s := co.conn.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range co.queues {
		if have.Name == q.Name {
			return nil
		}
	}
	co.queues = append(co.queues, q)
	s.queues[q.Name].consumer++
	s.notifyLocked()
	return nil
}

func (co *consumer) CancelQueue(ctx context.Context, name string) error {
	s := co.conn.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, have := range co.queues {
		if have.Name == name {
			co.queues = append(co.queues[:i], co.queues[i+1:]...)
			s.queues[name].consumer--
			return nil
		}
	}
	return nil
}

func (co *consumer) Queues() []broker.Queue {
	s := co.conn.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]broker.Queue(nil), co.queues...)
}

func (co *consumer) SetPrefetch(ctx context.Context, n int) error {
	s := co.conn.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	co.prefetch = n
	s.notifyLocked()
	return nil
}

func (co *consumer) Cancel(ctx context.Context) error {
	co.stop()
	s := co.conn.srv
	s.mu.Lock()
	for _, q := range co.queues {
		if sq, ok := s.queues[q.Name]; ok {
			sq.consumer--
		}
	}
	co.queues = nil
	s.mu.Unlock()
	return nil
}

// ack settles one delivery.
type ack struct {
	co    *consumer
	e     *entry
	queue string
}

func (a *ack) Ack(ctx context.Context) error { return a.settle(false, false) }

func (a *ack) Reject(ctx context.Context, requeue bool) error { return a.settle(requeue, !requeue) }

func (a *ack) settle(requeue, deadLetter bool) error {
	c := a.co.conn
	c.mu.Lock()
	if _, ok := c.unacked[a]; !ok {
		c.mu.Unlock()
		return broker.ErrStaleDelivery
	}
	delete(c.unacked, a)
	c.mu.Unlock()
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if requeue {
		a.requeueLocked()
	} else if deadLetter {
		if q, ok := s.queues[a.queue]; ok {
			s.deadLetterLocked(q, a.e)
		}
	}
	a.co.inflight--
	s.notifyLocked()
	return nil
}

func (a *ack) requeueLocked() {
	q, ok := a.co.conn.srv.queues[a.queue]
	if !ok {
		return
	}
	a.e.redelivered = true
	// RabbitMQ puts a requeued message back near its original position.
	q.ready = append([]*entry{a.e}, q.ready...)
}
