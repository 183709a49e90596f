package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
)

// Lease is a held lock. Its methods are safe for concurrent use.
//
// A lease ends in one of three ways, each closing Done: Unlock
// (ErrReleased), its validity time passing without a renewal (ErrExpired),
// or a renewal finding the lock no longer ours (ErrLost).
type Lease struct {
	l      *Locker
	name   string
	key    string
	token  uint64
	expiry time.Duration
	mark   *seenMark // read at acquisition on a single Redis; nil otherwise

	op sync.Mutex // serializes calls on m, which is not goroutine-safe
	m  *redsync.Mutex

	mu    sync.Mutex
	until time.Time
	timer *time.Timer
	err   error
	done  chan struct{}
	// cancels are KeepAlive contexts, cancelled by end itself so that the
	// work under them stops at once, even while a renewal is blocked on a
	// server that does not answer.
	cancels []context.CancelCauseFunc

	keepers sync.WaitGroup
}

func (le *Lease) start(until time.Time) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.until = until
	le.timer = time.AfterFunc(time.Until(until), func() { le.end(ErrExpired) })
}

// end records why the lease is over; the first reason wins.
func (le *Lease) end(err error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.err != nil {
		return
	}
	le.err = err
	le.timer.Stop()
	close(le.done)
	for _, cancel := range le.cancels {
		cancel(err)
	}
	le.cancels = nil
	if err != ErrReleased {
		le.l.log.Warn("lease ended", "lock", le.name, "token", le.token, "err", err)
	}
}

// Name is the lock's name.
func (le *Lease) Name() string { return le.name }

// Token is the lease's fencing token: larger than every token issued
// before for this name (0 with WithoutToken).
func (le *Lease) Token() uint64 { return le.token }

// Expiry is when the lease runs out unless renewed, by the local clock
// and with Redlock's margin for clock drift already taken off.
func (le *Lease) Expiry() time.Time {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.until
}

// Done is closed when the lease ends.
func (le *Lease) Done() <-chan struct{} { return le.done }

// Err is nil while the lease is held, then why it ended: ErrReleased,
// ErrExpired or an error wrapping ErrLost.
func (le *Lease) Err() error {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.err
}

// Extend renews the lease for its full length. An error wrapping ErrLost
// means the lock is gone (the lease has ended); other errors (servers not
// answering) leave the lease running until Expiry, so a later Extend may
// still succeed.
func (le *Lease) Extend(ctx context.Context) error {
	if err := le.Err(); err != nil {
		return fmt.Errorf("lock %q: extend: %w", le.name, err)
	}
	le.op.Lock()
	ok, err := le.m.ExtendContext(ctx)
	until := le.m.Until()
	le.op.Unlock()
	if ok {
		le.mu.Lock()
		defer le.mu.Unlock()
		if le.err != nil { // expired while we were renewing
			return fmt.Errorf("lock %q: extend: %w", le.name, le.err)
		}
		le.until = until
		le.timer.Reset(time.Until(until))
		return nil
	}
	var taken *redsync.ErrTaken
	if errors.As(err, &taken) || errors.Is(err, redsync.ErrExtendFailed) || le.deniedByMajority(err) {
		lost := fmt.Errorf("%w: %q is no longer ours (%v)", ErrLost, le.name, err)
		le.end(lost)
		return lost
	}
	return fmt.Errorf("lock %q: extend: %w: %w", le.name, ErrNoQuorum, err)
}

// deniedByMajority: enough servers answered "not yours" that no majority
// can still hold our value.
func (le *Lease) deniedByMajority(err error) bool {
	return le.notOurs(err) > len(le.l.clients)-le.l.quorum
}

// Unlock releases the lease: it ends at once (ErrReleased) and the lock
// key is deleted where it still holds our value. ErrNotHeld means the lease
// had already ended, or a majority of servers no longer held our key —
// whatever the lease protected may have been touched by another holder.
// Servers that cannot be reached keep our key until it expires, which is
// harmless: the lease was valid, and the lock is free once the reachable
// majority has dropped it.
func (le *Lease) Unlock(ctx context.Context) error {
	prior := le.Err()
	le.end(ErrReleased)
	le.keepers.Wait()
	le.op.Lock()
	ok, err := le.m.UnlockContext(ctx)
	le.op.Unlock()
	switch {
	case prior == ErrReleased:
		return fmt.Errorf("lock %q: %w: already unlocked", le.name, ErrNotHeld)
	case prior != nil:
		return fmt.Errorf("lock %q: %w: %w", le.name, ErrNotHeld, prior)
	case ok:
		return nil
	case le.notOurs(err) >= le.l.quorum:
		return fmt.Errorf("lock %q: %w: %w", le.name, ErrNotHeld, err)
	}
	le.l.log.Warn("lock released on fewer than a majority of servers; the rest expire with the lease",
		"lock", le.name, "err", err)
	return nil
}

// notOurs counts the servers that answered that the key is absent or
// holds another value.
func (le *Lease) notOurs(err error) int {
	n := 0
	for _, e := range unjoin(err) {
		var nt *redsync.ErrNodeTaken
		if errors.As(e, &nt) || errors.Is(e, redsync.ErrLockAlreadyExpired) {
			n++
		}
	}
	return n
}

// KeepAlive renews the lease every interval (use about a third of its
// length) until ctx ends or the lease ends. It returns a context derived
// from ctx that is cancelled, with the lease's Err as cause, the moment
// the lease is lost, expires or is released: run the protected work under
// it. Renewals that fail for want of answers are retried at the next tick;
// if none succeeds before Expiry the lease expires.
func (le *Lease) KeepAlive(ctx context.Context, interval time.Duration) context.Context {
	kctx, cancel := context.WithCancelCause(ctx)
	if interval <= 0 {
		interval = le.expiry / 3
	}
	le.mu.Lock()
	if le.err != nil {
		le.mu.Unlock()
		cancel(le.err)
		return kctx
	}
	le.cancels = append(le.cancels, cancel)
	le.mu.Unlock()
	le.keepers.Add(1)
	go func() {
		defer le.keepers.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				cancel(context.Cause(ctx))
				return
			case <-le.done:
				cancel(le.Err())
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(kctx, interval)
				err := le.Extend(rctx)
				rcancel()
				if err != nil && le.Err() == nil {
					le.l.log.Warn("lease renewal failed; retrying", "lock", le.name, "err", err)
				}
			}
		}
	}()
	return kctx
}
