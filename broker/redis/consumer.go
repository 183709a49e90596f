package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
)

// consumer pops from its list queues with one BRPOP over all of them
// (bucket-major, as kombu orders the keys) and receives its fanout queues
// over pub/sub.
type consumer struct {
	b     *Broker
	noAck bool
	out   chan *broker.Delivery

	mu       sync.Mutex
	queues   []broker.Queue
	order    []string // list queues in round-robin order
	prefetch int
	inflight int
	changed  chan struct{} // capacity 1: queues or prefetch changed, or an ack
	ps       *goredis.PubSub
	subWait  map[string]chan struct{} // pattern -> closed when confirmed

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Consume declares opts.Queues and starts delivering from them.
func (b *Broker) Consume(ctx context.Context, opts broker.ConsumeOptions) (broker.Consumer, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("redis: ConsumeOptions.Prefetch %d is negative", opts.Prefetch)
	}
	for _, q := range opts.Queues {
		if err := b.Declare(ctx, q); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &consumer{
		b: b, noAck: opts.NoAck, out: make(chan *broker.Delivery), prefetch: opts.Prefetch,
		changed: make(chan struct{}, 1), subWait: map[string]chan struct{}{}, ctx: cctx, cancel: cancel,
	}
	var patterns []string
	for _, q := range opts.Queues {
		if p, ok := c.addLocked(q); ok {
			patterns = append(patterns, p)
		}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cancel()
		return nil, broker.ErrClosed
	}
	b.consumers[c] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer c.wg.Done()
		c.listLoop()
	}()
	if len(patterns) > 0 {
		if err := c.subscribe(ctx, patterns); err != nil {
			_ = c.Cancel(ctx)
			return nil, err
		}
	}
	return c, nil
}

// addLocked adds q; for a fanout queue it returns the pattern to subscribe.
func (c *consumer) addLocked(q broker.Queue) (string, bool) {
	c.queues = append(c.queues, q)
	if c.b.isFanout(q) {
		return c.b.fanoutChannel(q.Exchange.Name, strings.ReplaceAll(q.RoutingKey, "#", "*")), true
	}
	c.order = append(c.order, q.Name)
	return "", false
}

func (b *Broker) isFanout(q broker.Queue) bool {
	return q.Exchange.Name != "" && b.kind(q.Exchange.Name) == "fanout"
}

func (c *consumer) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// subscribe PSUBSCRIBEs patterns and waits for Redis to confirm them, so
// that a message published after Consume returns is received.
func (c *consumer) subscribe(ctx context.Context, patterns []string) error {
	c.mu.Lock()
	var waits []chan struct{}
	for _, p := range patterns {
		w := make(chan struct{})
		c.subWait[p] = w
		waits = append(waits, w)
	}
	start := c.ps == nil
	if start {
		c.ps = c.b.rdb.PSubscribe(ctx)
	}
	ps := c.ps
	c.mu.Unlock()
	if start {
		ch := ps.ChannelWithSubscriptions(goredis.WithChannelSize(256))
		c.b.wg.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.b.wg.Done()
			defer c.wg.Done()
			c.pubsubLoop(ch)
		}()
	}
	if err := ps.PSubscribe(ctx, patterns...); err != nil {
		return fmt.Errorf("redis: subscribing %v: %w", patterns, err)
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("redis: waiting for subscription: %w", ctx.Err())
		case <-c.ctx.Done():
			return broker.ErrClosed
		}
	}
	return nil
}

func (c *consumer) pubsubLoop(ch <-chan any) {
	for {
		var v any
		var ok bool
		select {
		case v, ok = <-ch:
			if !ok {
				return
			}
		case <-c.ctx.Done():
			return
		}
		switch m := v.(type) {
		case *goredis.Subscription:
			if m.Kind == "psubscribe" {
				c.mu.Lock()
				if w, ok := c.subWait[m.Channel]; ok {
					close(w)
					delete(c.subWait, m.Channel)
				}
				c.mu.Unlock()
			}
		case *goredis.Message:
			c.deliverFanout(m)
		}
	}
}

func (c *consumer) deliverFanout(m *goredis.Message) {
	d, err := decodeEnvelope([]byte(m.Payload))
	if err != nil {
		c.b.log.warn("cannot decode a message on a fanout channel; dropped", "channel", m.Channel, "err", err, "payload", truncate([]byte(m.Payload)))
		return
	}
	c.mu.Lock()
	var targets []string
	for _, q := range c.queues {
		if c.b.isFanout(q) && c.b.fanoutChannel(q.Exchange.Name, strings.ReplaceAll(q.RoutingKey, "#", "*")) == m.Pattern {
			targets = append(targets, q.Name)
		}
	}
	c.mu.Unlock()
	for _, q := range targets {
		msg := d.msg
		if len(targets) > 1 {
			msg = d.msg.Clone()
		}
		del := broker.NewDelivery(msg, q, d.exchange, d.routingKey, d.redelivered, nil)
		select {
		case c.out <- del:
		case <-c.ctx.Done():
			return
		}
	}
}

// waitCapacity blocks until the prefetch window has room and there is a
// list queue to pop; it returns the keys to BRPOP, or nil when stopped.
func (c *consumer) waitCapacity() []string {
	for {
		c.mu.Lock()
		room := c.noAck || c.prefetch == 0 || c.inflight < c.prefetch
		var keys []string
		if room && len(c.order) > 0 {
			for _, p := range priorityBuckets {
				for _, q := range c.order {
					keys = append(keys, c.b.key(queueKey(q, p)))
				}
			}
		}
		c.mu.Unlock()
		if keys != nil {
			return keys
		}
		select {
		case <-c.changed:
		case <-c.ctx.Done():
			return nil
		}
	}
}

func (c *consumer) listLoop() {
	b := c.b
	var lastRestore time.Time
	backoff := b.cfg.Options.MinBackoff
	down := false
	for {
		keys := c.waitCapacity()
		if keys == nil {
			return
		}
		if time.Since(lastRestore) >= restoreInterval {
			lastRestore = time.Now()
			if _, err := b.restoreVisible(c.ctx); err != nil && c.ctx.Err() == nil && !isConnErr(err) {
				b.log.warn("restoring messages past the visibility timeout", "err", err)
			}
		}
		// Not c.ctx: a BRPOP abandoned mid-reply would lose the message the
		// server already popped. It returns within brpopTimeout anyway.
		res, err := b.rdb.BRPop(context.WithoutCancel(c.ctx), brpopTimeout, keys...).Result()
		if c.ctx.Err() != nil {
			if err == nil {
				c.unpopRaw(res[0], []byte(res[1]))
			}
			return
		}
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		if err != nil && !isConnErr(err) {
			// A server reply, not an outage (e.g. WRONGTYPE: a key of the
			// queue's name is not a list). Say so each time, slowly.
			b.log.error("polling queues failed", "err", err, "keys", len(keys))
			select {
			case <-time.After(b.cfg.Options.MaxBackoff):
			case <-c.ctx.Done():
				return
			}
			continue
		}
		if err != nil {
			if !down {
				down = true
				b.log.warn("lost the connection; reconnecting", "err", err)
				if h := b.cfg.Options.Hooks.OnDisconnect; h != nil {
					h(err)
				}
			}
			select {
			case <-time.After(backoff):
			case <-c.ctx.Done():
				return
			}
			backoff = min(backoff*2, b.cfg.Options.MaxBackoff)
			continue
		}
		if down {
			down = false
			backoff = b.cfg.Options.MinBackoff
			b.log.warn("connection restored; consuming again")
			if h := b.cfg.Options.Hooks.OnReconnect; h != nil {
				h(redactURL(b.cfg.URL))
			}
		}
		if res == nil {
			continue
		}
		c.handle(res[0], []byte(res[1]))
	}
}

// handle records and delivers one popped list element.
func (c *consumer) handle(key string, raw []byte) {
	b := c.b
	queue := queueOfKey(strings.TrimPrefix(key, b.prefix))
	c.mu.Lock()
	consuming := slices.Contains(c.order, queue)
	if consuming {
		// Fair rotation: the queue just served goes to the end.
		i := slices.Index(c.order, queue)
		c.order = append(append(c.order[:i:i], c.order[i+1:]...), queue)
	}
	c.mu.Unlock()
	if !consuming { // popped by a BRPOP issued before CancelQueue
		if err := b.rdb.RPush(context.Background(), key, raw).Err(); err != nil {
			b.log.error("cannot return a message popped from a cancelled queue", "queue", queue, "err", err, "message", truncate(raw))
		}
		return
	}
	d, err := decodeEnvelope(raw)
	if err != nil {
		// Never lost, never redelivered forever: park it for a human.
		bad := b.key("_celeriac.undecodable." + queue)
		b.log.error("undecodable message moved aside", "queue", queue, "key", bad, "err", err)
		if err := b.rdb.LPush(context.Background(), bad, raw).Err(); err != nil {
			b.log.error("cannot park an undecodable message; it is lost", "queue", queue, "err", err, "message", truncate(raw))
		}
		return
	}
	var a broker.Acknowledger
	if !c.noAck {
		ctx := context.WithoutCancel(c.ctx)
		pipe := b.rdb.TxPipeline()
		if err := b.recordUnacked(ctx, pipe, d.tag, raw, d.exchange, d.routingKey); err == nil {
			_, err = pipe.Exec(ctx)
		}
		if err != nil {
			// kombu loses the message here; we at least say so loudly.
			b.log.error("cannot record an unacked delivery; it will not be restored if this worker dies", "tag", d.tag, "err", err)
		}
		c.mu.Lock()
		c.inflight++
		c.mu.Unlock()
		b.mu.Lock()
		b.inflight[d.tag] = &pending{tag: d.tag, c: c}
		b.mu.Unlock()
		a = &acker{c: c, tag: d.tag}
	}
	del := broker.NewDelivery(d.msg, queue, d.exchange, d.routingKey, d.redelivered, a)
	select {
	case c.out <- del:
	case <-c.ctx.Done():
		if !c.noAck {
			b.forget(d.tag)
			c.release()
			if err := b.unpop(context.Background(), key, d.tag, raw); err != nil {
				b.log.error("cannot return an undelivered message; it returns after the visibility timeout", "tag", d.tag, "err", err)
			}
		} else {
			c.unpopRaw(key, raw)
		}
	}
}

func (c *consumer) unpopRaw(key string, raw []byte) {
	if err := c.b.rdb.RPush(context.Background(), key, raw).Err(); err != nil {
		c.b.log.error("cannot return a popped message", "key", key, "err", err, "message", truncate(raw))
	}
}

func (c *consumer) release() {
	c.mu.Lock()
	if c.inflight > 0 {
		c.inflight--
	}
	c.mu.Unlock()
	c.signal()
}

func (c *consumer) Deliveries() <-chan *broker.Delivery { return c.out }

func (c *consumer) AddQueue(ctx context.Context, q broker.Queue) error {
	if err := c.b.Declare(ctx, q); err != nil {
		return err
	}
	c.mu.Lock()
	for _, have := range c.queues {
		if have.Name == q.Name {
			c.mu.Unlock()
			return nil
		}
	}
	p, fan := c.addLocked(q)
	c.mu.Unlock()
	c.signal()
	if fan {
		return c.subscribe(ctx, []string{p})
	}
	return nil
}

func (c *consumer) CancelQueue(ctx context.Context, name string) error {
	c.mu.Lock()
	var unsub []string
	c.queues = slices.DeleteFunc(c.queues, func(q broker.Queue) bool {
		if q.Name != name {
			return false
		}
		if c.b.isFanout(q) {
			unsub = append(unsub, c.b.fanoutChannel(q.Exchange.Name, strings.ReplaceAll(q.RoutingKey, "#", "*")))
		}
		return true
	})
	c.order = slices.DeleteFunc(c.order, func(q string) bool { return q == name })
	ps := c.ps
	c.mu.Unlock()
	c.signal()
	if len(unsub) > 0 && ps != nil {
		return ps.PUnsubscribe(ctx, unsub...)
	}
	return nil
}

func (c *consumer) Queues() []broker.Queue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queues)
}

func (c *consumer) SetPrefetch(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("redis: prefetch %d is negative", n)
	}
	c.mu.Lock()
	c.prefetch = n
	c.mu.Unlock()
	c.signal()
	return nil
}

// Cancel stops delivery; deliveries already received stay settleable.
func (c *consumer) Cancel(ctx context.Context) error {
	c.stop()
	c.b.mu.Lock()
	delete(c.b.consumers, c)
	c.b.mu.Unlock()
	return nil
}

func (c *consumer) stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		ps := c.ps
		c.mu.Unlock()
		if ps != nil {
			_ = ps.Close()
		}
		c.wg.Wait()
		close(c.out)
	})
}

// acker settles a list delivery with kombu's ack emulation.
type acker struct {
	c   *consumer
	tag string
}

func (a *acker) Ack(ctx context.Context) error {
	b := a.c.b
	if b.isClosed() {
		return fmt.Errorf("%w: %w", broker.ErrStaleDelivery, broker.ErrClosed)
	}
	err := b.ackTag(ctx, a.tag)
	if err == nil {
		b.forget(a.tag)
		a.c.release()
	}
	return err
}

func (a *acker) Reject(ctx context.Context, requeue bool) error {
	b := a.c.b
	if b.isClosed() {
		return fmt.Errorf("%w: %w", broker.ErrStaleDelivery, broker.ErrClosed)
	}
	if requeue {
		// kombu: restore to the tail (LPUSH), then ack.
		if err := b.restoreTag(ctx, a.tag, true); err != nil {
			return err
		}
	}
	return a.Ack(ctx)
}

func redactURL(u string) string { return broker.Redact(u) }
