package amqp

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The delay ladder (see doc.go): level L is a headers exchange and a queue
// whose messages wait 2^L seconds.
const (
	delayPrefix   = "celeriac.delay."
	delayOut      = "celeriac.delay.out"
	delayToPrefix = "celeriac.delay.to."
	delayLevels   = 28 // up to 2^28-1 s, about 8.5 years
	// Message headers the ladder routes on. Headers exchanges ignore keys
	// starting with "x-", so these do not.
	hdrLevel  = "celeriac-delay-"
	hdrTarget = "celeriac-delay-to"
)

// MaxDelay is the longest delay PublishAt accepts.
const MaxDelay = (1<<delayLevels - 1) * time.Second

// delayState remembers what a session has declared for the ladder.
type delayState struct {
	mu      sync.Mutex
	ladder  bool
	targets map[string]bool
}

func levelExchange(l int) string {
	if l < 0 {
		return delayOut
	}
	return delayPrefix + strconv.Itoa(l)
}

func targetQueue(exchange string) string {
	if exchange == "" {
		exchange = "amq.default"
	}
	return delayToPrefix + exchange
}

// declareLadder declares the levels and the out exchange, once per session.
func (t *Transport) declareLadder(ctx context.Context, s *session, target string) error {
	s.delays.mu.Lock()
	defer s.delays.mu.Unlock()
	if s.delays.ladder && s.delays.targets[target] {
		return nil
	}
	err := t.withChannel(ctx, func(ch *amqp.Channel) error {
		if !s.delays.ladder {
			if err := ch.ExchangeDeclare(delayOut, amqp.ExchangeHeaders, true, false, false, false, nil); err != nil {
				return declareError(delayOut, err)
			}
			for l := range delayLevels {
				ex, next := levelExchange(l), levelExchange(l-1)
				// Messages without this level's bit skip to the next level.
				if err := ch.ExchangeDeclare(ex, amqp.ExchangeHeaders, true, false, false, false,
					amqp.Table{"alternate-exchange": next}); err != nil {
					return declareError(ex, err)
				}
				args := amqp.Table{
					"x-message-ttl":          intField(int64(1000) << l),
					"x-dead-letter-exchange": next,
				}
				if _, err := ch.QueueDeclare(ex, true, false, false, false, args); err != nil {
					return declareError(ex, err)
				}
				if err := ch.QueueBind(ex, "", ex, false, amqp.Table{"x-match": "all", hdrLevel + strconv.Itoa(l): "1"}); err != nil {
					return fmt.Errorf("amqp: bind %s: %w", ex, err)
				}
			}
		}
		if target != "" {
			// A missing target would swallow the message when it is due.
			if err := ch.ExchangeDeclarePassive(target, amqp.ExchangeDirect, false, false, false, false, nil); err != nil {
				if notFound(err) {
					return fmt.Errorf("%w: exchange %q does not exist", broker.ErrUnroutable, target)
				}
				return err
			}
		}
		// The last hop: a queue per target exchange whose messages expire
		// at once and are dead-lettered to the target with their own
		// routing key.
		q := targetQueue(target)
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{
			"x-message-ttl": int32(0), "x-dead-letter-exchange": target}); err != nil {
			return declareError(q, err)
		}
		if err := ch.QueueBind(q, "", delayOut, false, amqp.Table{"x-match": "all", hdrTarget: target}); err != nil {
			return fmt.Errorf("amqp: bind %s: %w", q, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.delays.ladder = true
	if s.delays.targets == nil {
		s.delays.targets = map[string]bool{}
	}
	s.delays.targets[target] = true
	return nil
}

// PublishAt implements broker.Broker without any plugin: the message
// travels down the delay ladder inside RabbitMQ (see doc.go) and reaches
// p.Exchange with p.RoutingKey when due, to the second.
func (t *Transport) PublishAt(ctx context.Context, p broker.Publishing, at time.Time) error {
	if p.Message == nil {
		return fmt.Errorf("amqp: publish: nil message")
	}
	delay := time.Until(at).Round(time.Second)
	if delay <= 0 {
		return t.Publish(ctx, p)
	}
	if delay > MaxDelay {
		return fmt.Errorf("amqp: PublishAt %s: delay %s exceeds the maximum %s", at.Format(time.RFC3339), delay, MaxDelay)
	}
	m := p.Message.Clone()
	if m.Headers == nil {
		m.Headers = map[string]any{}
	}
	// A previous trip's x-death would make RabbitMQ see a dead-letter
	// cycle and drop the message; a per-message TTL would expire it early.
	stripDelayHeaders(m.Headers)
	m.Properties.Expiration = ""
	if m.Properties.DeliveryMode == 0 {
		m.Properties.DeliveryMode = 2 // unset: it waits long enough to need persisting
	}
	secs := uint64(delay / time.Second)
	for l := range delayLevels {
		if secs&(1<<l) != 0 {
			m.Headers[hdrLevel+strconv.Itoa(l)] = "1"
		}
	}
	m.Headers[hdrTarget] = p.Exchange
	pub, err := toPublishing(m)
	if err != nil {
		return fmt.Errorf("amqp: publish: %w", err)
	}
	top := bits.Len64(secs) - 1
	for {
		s, err := t.session(ctx)
		if err != nil {
			return err
		}
		if err := t.declareLadder(ctx, s, p.Exchange); err != nil {
			return err
		}
		if p.Exchange == "" {
			// Check the queue now rather than lose the message when due.
			if _, err := t.Inspect(ctx, p.RoutingKey); err != nil {
				if errors.Is(err, broker.ErrQueueNotFound) {
					return fmt.Errorf("%w: queue %q does not exist", broker.ErrUnroutable, p.RoutingKey)
				}
				return err
			}
		}
		// Mandatory: with alternate exchanges down to the out exchange the
		// message is unroutable only if the target's last hop is missing.
		err = t.publish(ctx, levelExchange(top), p.RoutingKey, true, &pub)
		if err != nil && s.isLost() && ctx.Err() == nil {
			continue // redeclare on the new connection
		}
		return err
	}
}

// stripDelayHeaders removes the ladder's routing headers and the
// dead-lettering history it adds, so a delayed message arrives as it was
// sent. Messages that never took the ladder are left alone.
func stripDelayHeaders(h map[string]any) {
	if _, ok := h[hdrTarget]; !ok {
		return
	}
	for k := range h {
		if strings.HasPrefix(k, hdrLevel) || k == "x-death" ||
			strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			delete(h, k)
		}
	}
}
