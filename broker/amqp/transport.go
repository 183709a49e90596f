package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	broker.Register(func(ctx context.Context, urls []string, opts broker.Options) (broker.Broker, error) {
		return Open(ctx, urls, opts)
	}, "amqp", "amqps", "pyamqp", "pyamqps")
}

var (
	_ broker.Broker = (*Transport)(nil)
	_ broker.Pinger = (*Transport)(nil)
)

// errLost marks an operation cut short by the loss of its connection; the
// transport retries such operations on the next connection.
var errLost = errors.New("amqp: connection lost")

// Transport is a broker.Broker on RabbitMQ. It holds one connection at a
// time, to the first URL of its failover list that answers, and replaces it
// when it is lost.
type Transport struct {
	targets []target
	opts    broker.Options
	log     *slog.Logger

	mu        sync.Mutex
	sess      *session
	ready     chan struct{} // closed once sess is set; replaced when it is lost
	next      int           // failover position: the target to try next
	closed    bool
	consumers map[*consumer]struct{}

	done chan struct{}
	wg   sync.WaitGroup
}

// session is one live connection.
type session struct {
	conn   *amqp.Connection
	url    string // redacted
	lost   chan struct{}
	err    error // why it was lost; set before lost is closed
	pub    publisher
	delays delayState
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

// Open connects to the first URL of urls that answers and returns the
// transport. Later losses are repaired in the background.
func Open(ctx context.Context, urls []string, opts broker.Options) (*Transport, error) {
	opts = opts.WithDefaults()
	if len(urls) == 0 {
		return nil, fmt.Errorf("%w: no URL given", ErrBadURL)
	}
	t := &Transport{opts: opts, log: opts.Logger, ready: make(chan struct{}),
		done: make(chan struct{}), consumers: map[*consumer]struct{}{}}
	for _, raw := range urls {
		tg, err := parseURL(raw)
		if err != nil {
			t.log.Error("amqp: bad broker URL", "url", redact(raw), "error", err)
			return nil, err
		}
		t.targets = append(t.targets, tg)
	}
	s, err := t.dialAny(ctx)
	if err != nil {
		return nil, err
	}
	t.install(s)
	t.wg.Add(1)
	go t.supervise(s)
	return t, nil
}

// dialAny tries each target once, starting at the failover position.
func (t *Transport) dialAny(ctx context.Context) (*session, error) {
	var errs []error
	for range t.targets {
		t.mu.Lock()
		tg := t.targets[t.next%len(t.targets)]
		t.mu.Unlock()
		s, err := t.dial(ctx, tg)
		if err == nil {
			return s, nil
		}
		t.log.Debug("amqp: connect failed", "url", tg.redacted, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", tg.redacted, err))
		t.mu.Lock()
		t.next++
		t.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("amqp: no broker reachable: %w", errors.Join(errs...))
}

func (t *Transport) dial(ctx context.Context, tg target) (*session, error) {
	timeout := t.opts.ConnectTimeout
	if tg.timeout > 0 {
		timeout = tg.timeout
	}
	heartbeat := t.opts.Heartbeat
	if tg.heartbeat < 0 {
		heartbeat = 0
	} else if tg.heartbeat > 0 {
		heartbeat = tg.heartbeat
	}
	props := amqp.NewConnectionProperties()
	if t.opts.Name != "" {
		props.SetClientConnectionName(t.opts.Name)
	}
	var raw net.Conn
	cfg := amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: tg.user, Password: tg.password}},
		Vhost:      tg.vhost,
		Heartbeat:  heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var d net.Dialer
			c, err := d.DialContext(dctx, network, tg.addr)
			if err != nil {
				return nil, err
			}
			if tg.tls != nil {
				tc := tls.Client(c, tg.tls.Clone())
				if err := tc.HandshakeContext(dctx); err != nil {
					c.Close()
					return nil, err
				}
				c = tc
			}
			// The AMQP handshake must finish within the timeout too.
			_ = c.SetDeadline(time.Now().Add(timeout))
			raw = c
			return newLongFixConn(c), nil
		},
	}
	// The address in this URL is ignored (Dial above decides); DialConfig
	// only needs a well-formed one. heartbeat=0 in the broker URL asks for
	// no preference: amqp091-go then takes the server's interval (it cannot
	// turn heartbeats off as py-amqp can), and that must be said in the URL
	// since a zero cfg.Heartbeat means amqp091-go's own default.
	dialURL := "amqp://localhost/"
	if heartbeat == 0 {
		dialURL += "?heartbeat=0"
	}
	conn, err := amqp.DialConfig(dialURL, cfg)
	if err != nil {
		return nil, err
	}
	// From here on heartbeats manage the read deadline.
	_ = raw.SetDeadline(time.Time{})
	return &session{conn: conn, url: tg.redacted, lost: make(chan struct{})}, nil
}

func (t *Transport) install(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sess = s
	close(t.ready)
}

// supervise watches the live connection and replaces it when it is lost,
// trying the failover list with exponential backoff.
func (t *Transport) supervise(s *session) {
	defer t.wg.Done()
	for {
		closed := s.conn.NotifyClose(make(chan *amqp.Error, 1))
		blocked := s.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	watch:
		for {
			select {
			case b, ok := <-blocked:
				// A resource alarm (memory, disk) holds every publish until
				// it clears; say so, or a stalled producer is a mystery.
				if !ok {
					blocked = nil
				} else if b.Active {
					t.log.Warn("amqp: broker blocks publishing", "url", s.url, "reason", b.Reason)
				} else {
					t.log.Info("amqp: broker unblocked publishing", "url", s.url)
				}
			case e := <-closed:
				if e != nil {
					s.err = e
				} else {
					s.err = errLost
				}
				if t.isClosed() {
					close(s.lost)
					return
				}
				break watch
			case <-t.done:
				s.err = broker.ErrClosed
				close(s.lost)
				return
			}
		}
		t.mu.Lock()
		t.sess = nil
		t.ready = make(chan struct{})
		t.mu.Unlock()
		close(s.lost)
		t.log.Warn("amqp: connection lost", "url", s.url, "error", s.err)
		if h := t.opts.Hooks.OnDisconnect; h != nil {
			h(s.err)
		}
		ns := t.reconnect()
		if ns == nil {
			return
		}
		t.install(ns)
		t.log.Info("amqp: reconnected", "url", ns.url)
		if h := t.opts.Hooks.OnReconnect; h != nil {
			h(ns.url)
		}
		s = ns
	}
}

func (t *Transport) reconnect() *session {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := t.opts.MinBackoff
	for {
		s, err := t.dialAny(ctx)
		if err == nil {
			return s
		}
		t.log.Warn("amqp: reconnect failed", "error", err, "retry_in", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-t.done:
			timer.Stop()
			return nil
		}
		backoff = min(backoff*2, t.opts.MaxBackoff)
	}
}

// session returns the live connection, waiting for one (bounded by ctx).
func (t *Transport) session(ctx context.Context) (*session, error) {
	for {
		t.mu.Lock()
		s, ready, closed := t.sess, t.ready, t.closed
		t.mu.Unlock()
		if closed {
			return nil, broker.ErrClosed
		}
		if s != nil && !s.isLost() {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.done:
			return nil, broker.ErrClosed
		}
		if s != nil {
			// The session may be lost before the supervisor noticed.
			select {
			case <-s.lost:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-t.done:
				return nil, broker.ErrClosed
			}
		}
	}
}

// withChannel runs f on a throwaway channel, so that a channel error such
// as PRECONDITION_FAILED or NOT_FOUND costs no one else anything. An
// operation cut short by a lost connection is retried on the next one.
func (t *Transport) withChannel(ctx context.Context, f func(*amqp.Channel) error) error {
	for {
		s, err := t.session(ctx)
		if err != nil {
			return err
		}
		ch, err := s.conn.Channel()
		if err == nil {
			err = f(ch)
			_ = ch.Close()
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ae *amqp.Error
		if errors.As(err, &ae) && channelException(ae) {
			return err // the broker's answer (404, 406…), not a lost connection
		}
		if errors.Is(err, broker.ErrQueueNotFound) {
			return err
		}
		var mm *broker.DeclareMismatchError
		if errors.As(err, &mm) {
			return err
		}
		if waitLost(ctx, s) {
			continue
		}
		return err
	}
}

// Declare implements broker.Broker: the exchange (unless it is the default
// one), the queue and its binding, with kombu's flags and arguments.
func (t *Transport) Declare(ctx context.Context, q broker.Queue) error {
	args, err := toTable(q.Args)
	if err != nil {
		return fmt.Errorf("amqp: declare queue %q: %w", q.Name, err)
	}
	return t.withChannel(ctx, func(ch *amqp.Channel) error {
		if err := declareExchange(ch, q.Exchange); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, q.Exclusive, false, args); err != nil {
			return declareError(q.Name, err)
		}
		if q.Exchange.Name != "" {
			if err := ch.QueueBind(q.Name, q.RoutingKey, q.Exchange.Name, false, nil); err != nil {
				return fmt.Errorf("amqp: bind queue %q to %q: %w", q.Name, q.Exchange.Name, err)
			}
		}
		return nil
	})
}

// DeclareExchange implements broker.Broker.
func (t *Transport) DeclareExchange(ctx context.Context, ex broker.Exchange) error {
	return t.withChannel(ctx, func(ch *amqp.Channel) error { return declareExchange(ch, ex) })
}

func declareExchange(ch *amqp.Channel, ex broker.Exchange) error {
	if ex.Name == "" {
		return nil
	}
	kind := ex.Kind
	if kind == "" {
		kind = "direct"
	}
	args, err := toTable(ex.Args)
	if err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", ex.Name, err)
	}
	if err := ch.ExchangeDeclare(ex.Name, kind, ex.Durable, ex.AutoDelete, false, false, args); err != nil {
		return declareError(ex.Name, err)
	}
	return nil
}

// declareError types a 406 PRECONDITION_FAILED as a DeclareMismatchError.
func declareError(name string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return &broker.DeclareMismatchError{Name: name, Err: err}
	}
	return fmt.Errorf("amqp: declare %q: %w", name, err)
}

func notFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// Inspect implements broker.Broker with a passive declare.
func (t *Transport) Inspect(ctx context.Context, name string) (broker.QueueInfo, error) {
	var info broker.QueueInfo
	err := t.withChannel(ctx, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		if err != nil {
			if notFound(err) {
				return fmt.Errorf("%w: %q", broker.ErrQueueNotFound, name)
			}
			return fmt.Errorf("amqp: inspect %q: %w", name, err)
		}
		info = broker.QueueInfo{Name: q.Name, Messages: q.Messages, Consumers: q.Consumers}
		return nil
	})
	return info, err
}

// Purge implements broker.Broker.
func (t *Transport) Purge(ctx context.Context, name string) (int, error) {
	var n int
	err := t.withChannel(ctx, func(ch *amqp.Channel) error {
		var err error
		n, err = ch.QueuePurge(name, false)
		if err != nil {
			if notFound(err) {
				return fmt.Errorf("%w: %q", broker.ErrQueueNotFound, name)
			}
			return fmt.Errorf("amqp: purge %q: %w", name, err)
		}
		return nil
	})
	return n, err
}

// Ping implements broker.Pinger: it opens and closes a channel, a round trip
// to the broker on the live connection.
func (t *Transport) Ping(ctx context.Context) error {
	return t.withChannel(ctx, func(*amqp.Channel) error { return nil })
}

// Close implements broker.Broker. Consumers stop, and closing the
// connection returns every unacknowledged delivery to its queue.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	s := t.sess
	consumers := make([]*consumer, 0, len(t.consumers))
	for c := range t.consumers {
		consumers = append(consumers, c)
	}
	t.mu.Unlock()
	for _, c := range consumers {
		c.stop()
	}
	var err error
	if s != nil {
		if e := s.conn.Close(); e != nil && !errors.Is(e, amqp.ErrClosed) {
			err = e
		}
	}
	for _, c := range consumers {
		<-c.stopped
	}
	t.wg.Wait()
	return err
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}
