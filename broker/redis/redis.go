package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redisurl"
)

func init() {
	broker.Register(func(ctx context.Context, urls []string, opts broker.Options) (broker.Broker, error) {
		return New(ctx, Config{URL: strings.Join(urls, ";"), Options: opts})
	}, "redis", "rediss", "redis+socket", "unix", "socket", "sentinel")
}

// kombu's constants (kombu/transport/redis.py, 5.2).
const (
	sep             = "\x06\x16"
	bindingPrefix   = "_kombu.binding."
	unackedKey      = "unacked"
	unackedIndexKey = "unacked_index"
	unackedMutexKey = "unacked_mutex"
	unackedMutexTTL = 300 * time.Second
	// restoreInterval: a Celery worker looks for messages past the
	// visibility timeout every 10 s (loop.call_repeatedly(10,
	// maybe_restore_messages)), and so does each consumer here.
	restoreInterval = 10 * time.Second
	// brpopTimeout is kombu's BRPOP timeout; it also bounds how long a
	// cancelled consumer takes to stop.
	brpopTimeout = time.Second
	// delayedKey holds messages parked by PublishAt (celeriac's own key).
	delayedKey = "_celeriac.delayed"
	// queuesKey records queues declared through celeriac, so Inspect can
	// tell an empty queue from a missing one (kombu stores nothing).
	queuesKey = "_celeriac.queues"
)

// priorityBuckets are kombu's PRIORITY_STEPS.
var priorityBuckets = [...]int{0, 3, 6, 9}

// DefaultVisibilityTimeout is kombu's visibility_timeout.
const DefaultVisibilityTimeout = time.Hour

// Config configures a Broker.
type Config struct {
	// URL is a redis://, rediss://, unix:// or sentinel:// URL as Celery's
	// broker_url spells it. ?visibility_timeout=SECONDS sets
	// VisibilityTimeout (Celery's broker_transport_options). Required
	// unless Client is set.
	URL string
	// GlobalKeyPrefix is kombu's global_keyprefix transport option: it
	// prefixes every key and pub/sub channel, so that several deployments
	// share one Redis database. It must match the Python side's
	// broker_transport_options. Also ?global_keyprefix= in the URL.
	GlobalKeyPrefix string
	// Client is an existing connection to use instead of URL; Close does
	// not close it. DB is then the database number it selects (for the
	// fanout channel prefix).
	Client goredis.UniversalClient
	DB     int
	// VisibilityTimeout is how long a delivered, unacknowledged message
	// stays invisible before any consumer (Go or Python) restores it to its
	// queue. Default one hour, kombu's default. Must exceed the longest
	// task run and ETA wait, or the message runs twice.
	VisibilityTimeout time.Duration
	// DelayPoll is how often PublishAt's parked messages are checked.
	// Default 250 ms.
	DelayPoll time.Duration
	Options   broker.Options
}

// Broker is a connection to a Redis server speaking kombu's Redis
// transport protocol. It implements broker.Broker and broker.Pinger.
type Broker struct {
	cfg       Config
	rdb       goredis.UniversalClient
	ownClient bool
	fanoutPfx string // "/{db}."
	prefix    string // kombu's global_keyprefix
	log       logger

	mu        sync.Mutex
	exchanges map[string]string // exchange name -> kind, known locally as in kombu
	inflight  map[string]*pending
	consumers map[*consumer]struct{}
	closed    bool
	done      chan struct{}
	ctx       context.Context // cancelled by Close
	stopCtx   context.CancelFunc
	wg        sync.WaitGroup
}

// pending is a delivered, unacknowledged message.
type pending struct {
	tag string
	c   *consumer
}

// New connects to Redis and starts the mover for PublishAt's parked
// messages.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.Options = cfg.Options.WithDefaults()
	if cfg.DelayPoll == 0 {
		cfg.DelayPoll = 250 * time.Millisecond
	}
	b := &Broker{
		cfg:       cfg,
		exchanges: map[string]string{},
		inflight:  map[string]*pending{},
		consumers: map[*consumer]struct{}{},
		done:      make(chan struct{}),
		log:       logger{cfg.Options.Logger},
	}
	if cfg.DelayPoll < 0 {
		return nil, fmt.Errorf("redis: Config.DelayPoll %v is negative", cfg.DelayPoll)
	}
	// Celery's fixed exchanges; on Redis the event exchange is fanout
	// (celery.events.event.get_exchange).
	b.exchanges[broker.EventExchange.Name] = "fanout"
	b.exchanges[broker.ControlExchange.Name] = "fanout"
	b.exchanges[broker.ReplyExchange.Name] = "direct"
	db := cfg.DB
	switch {
	case cfg.Client != nil:
		b.rdb = cfg.Client
	case cfg.URL == "":
		return nil, errors.New("redis: Config.URL or Config.Client is required")
	default:
		raw, vt, pfx, err := splitTransportOptions(cfg.URL)
		if err != nil {
			return nil, err
		}
		if vt > 0 && cfg.VisibilityTimeout == 0 {
			b.cfg.VisibilityTimeout = vt
		}
		if pfx != "" && cfg.GlobalKeyPrefix == "" {
			b.cfg.GlobalKeyPrefix = pfx
		}
		rc, err := redisurl.Parse(raw, redisurl.Options{ClientName: cfg.Options.Name})
		if err != nil {
			return nil, fmt.Errorf("redis: Config.URL: %w", err)
		}
		if rc.Kind == redisurl.Cluster {
			return nil, fmt.Errorf("redis: Config.URL: kombu's Redis transport has no cluster mode; use one server or sentinel://")
		}
		if rc.Universal.DialTimeout == 0 {
			rc.Universal.DialTimeout = cfg.Options.ConnectTimeout
		}
		rc.Universal.MinRetryBackoff = cfg.Options.MinBackoff
		rc.Universal.MaxRetryBackoff = cfg.Options.MaxBackoff
		db = rc.Universal.DB
		b.rdb = rc.NewClient()
		b.ownClient = true
	}
	if b.cfg.VisibilityTimeout == 0 {
		b.cfg.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if b.cfg.VisibilityTimeout < 0 {
		return nil, fmt.Errorf("redis: Config.VisibilityTimeout %v is negative", b.cfg.VisibilityTimeout)
	}
	b.fanoutPfx = "/" + strconv.Itoa(db) + "."
	b.prefix = b.cfg.GlobalKeyPrefix
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		b.closeClient()
		return nil, fmt.Errorf("redis: connecting to %s: %w", redisurl.Redact(cfg.URL), err)
	}
	b.ctx, b.stopCtx = context.WithCancel(context.Background())
	b.wg.Add(1)
	go b.runDelayed()
	return b, nil
}

// splitTransportOptions removes kombu transport options Celery users put
// in the URL (visibility_timeout, global_keyprefix) before the URL is
// parsed for the connection.
func splitTransportOptions(raw string) (string, time.Duration, string, error) {
	i := strings.IndexByte(raw, '?')
	if i < 0 {
		return raw, 0, "", nil
	}
	q, err := url.ParseQuery(raw[i+1:])
	if err != nil {
		return raw, 0, "", nil // redisurl reports the bad query
	}
	var vt time.Duration
	if v := q.Get("visibility_timeout"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return "", 0, "", fmt.Errorf("redis: URL parameter visibility_timeout=%q is not a positive number of seconds", v)
		}
		vt = time.Duration(f * float64(time.Second))
		q.Del("visibility_timeout")
	}
	pfx := q.Get("global_keyprefix")
	q.Del("global_keyprefix")
	rest := q.Encode()
	if rest == "" {
		return raw[:i], vt, pfx, nil
	}
	return raw[:i] + "?" + rest, vt, pfx, nil
}

// Client returns the underlying go-redis client.
func (b *Broker) Client() goredis.UniversalClient { return b.rdb }

// Ping checks the connection.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	return b.rdb.Ping(ctx).Err()
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Broker) kind(exchange string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.exchanges[exchange]; ok {
		return k
	}
	return "direct" // kombu's typeof default
}

// DeclareExchange records the exchange's type locally: kombu keeps
// exchange types in each client, never in Redis.
func (b *Broker) DeclareExchange(ctx context.Context, ex broker.Exchange) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if ex.Name == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, fixed := b.exchanges[ex.Name]; fixed && ex.Name == broker.EventExchange.Name {
		return nil // stays fanout on Redis
	}
	b.exchanges[ex.Name] = ex.Kind
	return nil
}

// Declare records q's exchange and adds its binding to
// _kombu.binding.<exchange>, as kombu's queue_bind does.
func (b *Broker) Declare(ctx context.Context, q broker.Queue) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if q.Name == "" {
		return errors.New("redis: queue has no name")
	}
	if err := b.DeclareExchange(ctx, q.Exchange); err != nil {
		return err
	}
	return b.retry(ctx, func(ctx context.Context) error {
		pipe := b.rdb.Pipeline()
		if q.Exchange.Name != "" {
			pattern := ""
			if b.kind(q.Exchange.Name) == "topic" {
				pattern = topicPattern(q.RoutingKey)
			}
			pipe.SAdd(ctx, b.key(bindingPrefix+q.Exchange.Name), q.RoutingKey+sep+pattern+sep+q.Name)
		}
		// Per-client queues (RPC replies, pidbox) are not recorded: there
		// would be one per process ever started.
		if b.kind(q.Exchange.Name) != "fanout" && !q.AutoDelete {
			pipe.SAdd(ctx, b.key(queuesKey), q.Name)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Publish routes p as kombu would: PUBLISH for fanout exchanges, LPUSH to
// each bound queue's priority list otherwise.
func (b *Broker) Publish(ctx context.Context, p broker.Publishing) error {
	env, err := b.envelopeFor(p)
	if err != nil {
		return err
	}
	return b.retry(ctx, func(ctx context.Context) error {
		if p.Exchange != "" && b.kind(p.Exchange) == "fanout" {
			return b.rdb.Publish(ctx, b.fanoutChannel(p.Exchange, p.RoutingKey), env).Err()
		}
		queues, err := b.lookup(ctx, b.rdb, p.Exchange, p.RoutingKey)
		if err != nil {
			return err
		}
		if len(queues) == 0 {
			b.log.debug("message dropped: no queue bound", "exchange", p.Exchange, "routing_key", p.RoutingKey)
			return nil
		}
		pri := int(p.Message.Properties.Priority)
		if len(queues) == 1 {
			return b.rdb.LPush(ctx, b.key(queueKey(queues[0], pri)), env).Err()
		}
		_, err = b.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			for _, q := range queues {
				pipe.LPush(ctx, b.key(queueKey(q, pri)), env)
			}
			return nil
		})
		return err
	})
}

// retry runs f until it succeeds, fails with a non-connection error, or
// ctx ends: calls made while Redis is down wait for it.
func (b *Broker) retry(ctx context.Context, f func(context.Context) error) error {
	backoff := b.cfg.Options.MinBackoff
	for {
		err := f(ctx)
		if err == nil || !isConnErr(err) {
			return err
		}
		if b.isClosed() {
			return broker.ErrClosed
		}
		b.log.warn("redis unavailable; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis: %w (last error: %w)", ctx.Err(), err)
		case <-b.done:
			return broker.ErrClosed
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, b.cfg.Options.MaxBackoff)
	}
}

// isConnErr tells connection trouble (worth retrying) from command errors.
func isConnErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, goredis.Nil) {
		return false
	}
	var re goredis.Error
	if errors.As(err, &re) {
		// Server replies; LOADING and READONLY (failover) pass with time.
		msg := re.Error()
		return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "READONLY") || strings.HasPrefix(msg, "MASTERDOWN")
	}
	return true
}

// Inspect reports the number of ready messages over all priority lists.
func (b *Broker) Inspect(ctx context.Context, queue string) (broker.QueueInfo, error) {
	if b.isClosed() {
		return broker.QueueInfo{}, broker.ErrClosed
	}
	info := broker.QueueInfo{Name: queue}
	var exists bool
	err := b.retry(ctx, func(ctx context.Context) error {
		pipe := b.rdb.Pipeline()
		var lens []*goredis.IntCmd
		for _, p := range priorityBuckets {
			lens = append(lens, pipe.LLen(ctx, b.key(queueKey(queue, p))))
		}
		known := pipe.SIsMember(ctx, b.key(queuesKey), queue)
		celeryBinding := pipe.SMembers(ctx, b.key(bindingPrefix+queue))
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		info.Messages = 0
		for _, l := range lens {
			info.Messages += int(l.Val())
		}
		exists = info.Messages > 0 || known.Val()
		for _, m := range celeryBinding.Val() {
			if strings.HasSuffix(m, sep+queue) {
				exists = true
			}
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	if !exists {
		return info, fmt.Errorf("%w: %s", broker.ErrQueueNotFound, queue)
	}
	return info, nil
}

// Purge deletes the queue's ready messages (kombu's _purge).
func (b *Broker) Purge(ctx context.Context, queue string) (int, error) {
	if b.isClosed() {
		return 0, broker.ErrClosed
	}
	var n int
	err := b.retry(ctx, func(ctx context.Context) error {
		var lens []*goredis.IntCmd
		_, err := b.rdb.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
			for _, p := range priorityBuckets {
				k := b.key(queueKey(queue, p))
				lens = append(lens, pipe.LLen(ctx, k))
				pipe.Del(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		n = 0
		for _, l := range lens {
			n += int(l.Val())
		}
		return nil
	})
	return n, err
}

// Close stops the consumers, puts this connection's unacknowledged
// messages back at the head of their queues (kombu's restore_at_shutdown)
// and closes the connection.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.stopCtx()
	cs := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.stop()
	}
	b.wg.Wait()
	b.mu.Lock()
	tags := make([]string, 0, len(b.inflight))
	for t := range b.inflight {
		tags = append(tags, t)
	}
	b.inflight = map[string]*pending{}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, t := range tags {
		if err := b.restoreTag(ctx, t, false); err != nil {
			errs = append(errs, err)
		}
	}
	b.closeClient()
	if len(errs) > 0 {
		return fmt.Errorf("redis: restoring %d unacked messages at close (they return after the visibility timeout): %w", len(errs), errors.Join(errs...))
	}
	return nil
}

func (b *Broker) closeClient() {
	if b.ownClient {
		_ = b.rdb.Close()
	}
}

// envelopeFor checks a publishing and encodes it in kombu's envelope.
func (b *Broker) envelopeFor(p broker.Publishing) ([]byte, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	if p.Message == nil {
		return nil, errors.New("redis: Publishing.Message is nil")
	}
	env, _, err := encodeEnvelope(p.Message, p.Exchange, p.RoutingKey)
	return env, err
}
