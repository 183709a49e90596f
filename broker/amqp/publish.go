package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/celeriac/celeriac/broker"
	amqp "github.com/rabbitmq/amqp091-go"
)

// errChannelGone marks a publish whose channel closed before its confirm
// arrived; the message may or may not have been taken, so it is sent
// again (at-least-once, as kombu's publish retry does).
var errChannelGone = errors.New("amqp: publish channel closed")

// publisher holds a session's confirm channel. Publishes are pipelined on
// it: each caller sends and then waits for its own confirm, so many are in
// flight at once and concurrent callers never queue behind one another's
// round trips.
type publisher struct {
	mu  sync.Mutex
	cur *pubChan
}

type pubChan struct {
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
	reason  *amqp.Error // guarded by rmu

	rmu     sync.Mutex
	pending []amqp.Return // returned messages not yet claimed by their publisher
}

// maxPending bounds returns kept for publishers that gave up waiting.
const maxPending = 1024

func (t *Transport) pubChan(s *session) (*pubChan, error) {
	s.pub.mu.Lock()
	defer s.pub.mu.Unlock()
	if pc := s.pub.cur; pc != nil && !pc.ch.IsClosed() {
		return pc, nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	// A basic.return precedes the confirm of the same message and both are
	// dispatched by amqp091-go's one reader goroutine, so once a confirm is
	// in, its return (if any) is already in this buffered channel.
	pc := &pubChan{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 4*maxPending)),
		closes: ch.NotifyClose(make(chan *amqp.Error, 1))}
	s.pub.cur = pc
	return pc, nil
}

func (pc *pubChan) publish(ctx context.Context, ex, rk string, mandatory bool, pub *amqp.Publishing) error {
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, ex, rk, mandatory, false, *pub)
	if err != nil {
		if pc.ch.IsClosed() {
			return fmt.Errorf("%w: %v", errChannelGone, err)
		}
		return err
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if mandatory && pc.claimReturn(ex, rk, pub) {
		return fmt.Errorf("%w: exchange %q, routing key %q", broker.ErrUnroutable, ex, rk)
	}
	if dc.Acked() {
		return nil
	}
	if pc.ch.IsClosed() {
		return errChannelGone
	}
	return fmt.Errorf("%w: exchange %q, routing key %q", broker.ErrNotConfirmed, ex, rk)
}

// closeReason is the broker's reason for closing the channel, if known.
func (pc *pubChan) closeReason() *amqp.Error {
	pc.rmu.Lock()
	defer pc.rmu.Unlock()
	if pc.reason == nil {
		select {
		case e, ok := <-pc.closes:
			if ok {
				pc.reason = e
			}
		default:
		}
	}
	return pc.reason
}

// claimReturn reports whether the broker returned this publish, and
// forgets that return.
func (pc *pubChan) claimReturn(ex, rk string, pub *amqp.Publishing) bool {
	pc.rmu.Lock()
	defer pc.rmu.Unlock()
	for drained := false; !drained; {
		select {
		case r, ok := <-pc.returns:
			if !ok { // the channel is closed: nothing more will come
				drained = true
				break
			}
			pc.pending = append(pc.pending, r)
		default:
			drained = true
		}
	}
	if n := len(pc.pending) - maxPending; n > 0 {
		pc.pending = append(pc.pending[:0], pc.pending[n:]...)
	}
	for i, r := range pc.pending {
		if r.Exchange == ex && r.RoutingKey == rk && r.CorrelationId == pub.CorrelationId &&
			r.MessageId == pub.MessageId && bytes.Equal(r.Body, pub.Body) {
			pc.pending = append(pc.pending[:i], pc.pending[i+1:]...)
			return true
		}
	}
	return false
}

// Publish implements broker.Broker with a publisher confirm. A publish to
// the default exchange names a queue, so it is sent mandatory: if that
// queue does not exist the message would be dropped silently, and the
// caller gets broker.ErrUnroutable instead. Publishes to named exchanges
// (events, broadcasts) may legitimately reach no one and are not mandatory.
func (t *Transport) Publish(ctx context.Context, p broker.Publishing) error {
	if p.Message == nil {
		return errors.New("amqp: publish: nil message")
	}
	pub, err := toPublishing(p.Message)
	if err != nil {
		return fmt.Errorf("amqp: publish: %w", err)
	}
	return t.publish(ctx, p.Exchange, p.RoutingKey, p.Exchange == "", &pub)
}

func (t *Transport) publish(ctx context.Context, ex, rk string, mandatory bool, pub *amqp.Publishing) error {
	for attempt := 1; ; attempt++ {
		s, err := t.session(ctx)
		if err != nil {
			return err
		}
		pc, err := t.pubChan(s)
		if err == nil {
			err = pc.publish(ctx, ex, rk, mandatory, pub)
		}
		if err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, broker.ErrUnroutable) || errors.Is(err, broker.ErrNotConfirmed) {
			return err
		}
		var reason *amqp.Error
		if pc != nil {
			reason = pc.closeReason()
		}
		if !channelException(reason) && waitLost(ctx, s) {
			continue // the next connection takes it
		}
		if errors.Is(err, errChannelGone) || errors.Is(err, amqp.ErrClosed) {
			// The channel died of a channel error, perhaps another
			// publisher's (a missing exchange). Retry a few times; a
			// publish that keeps killing it gets the reason.
			if attempt < 3 {
				continue
			}
			if reason != nil {
				return fmt.Errorf("amqp: publish to exchange %q: %w", ex, reason)
			}
		}
		return fmt.Errorf("amqp: publish to exchange %q: %w", ex, err)
	}
}

// channelException reports whether the broker closed a channel over
// something done on it (404 NOT_FOUND, 406 PRECONDITION_FAILED…), as
// opposed to the connection going away.
func channelException(e *amqp.Error) bool {
	return e != nil && e.Server && e.Recover
}

// lostWait bounds how long an I/O error waits for amqp091-go to declare
// its connection closed (it does so asynchronously after a failed write).
const lostWait = 2 * time.Second

// waitLost reports whether s is lost, giving a failing connection lostWait
// to be noticed.
func waitLost(ctx context.Context, s *session) bool {
	if s.isLost() {
		return true
	}
	timer := time.NewTimer(lostWait)
	defer timer.Stop()
	select {
	case <-s.lost:
		return true
	case <-timer.C:
		return s.conn.IsClosed()
	case <-ctx.Done():
		return false
	}
}
