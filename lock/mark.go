package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Marks record that the work a lock protects is finished, so a later
// holder can skip it: the worker's exactly-once guard marks a task id
// done (with its final state) before it releases the task's lease.
//
// A mark is written to a majority of the servers and read from a
// majority; any two majorities share a server, so a mark that was written
// is always seen, even with one of three Redlock masters down.

// markSuffix follows the lock's key: same hash tag, same Cluster slot.
const markSuffix = ":done"

func (l *Locker) markKey(name string) string { return l.key(name) + markSuffix }

// MarkSeen returns the lease's name's mark as read when the lease was
// taken, with ok true, on a single Redis (where it costs no extra trip);
// with several servers ok is false and the caller uses Locker.Marked.
// Read under the lease, it cannot miss the mark of a holder that marked
// before releasing.
func (le *Lease) MarkSeen() (value string, found, ok bool) {
	if le.mark == nil {
		return "", false, false
	}
	return le.mark.value, le.mark.found, true
}

// Peeked returns the value of WithPeek's key as read when the lease was
// taken, with ok true when it was read (one Redis server, WithPeek given).
func (le *Lease) Peeked() (value string, found, ok bool) {
	if le.mark == nil || !le.mark.peekRead {
		return "", false, false
	}
	return le.mark.peek, le.mark.peekFound, true
}

// MarkAndUnlock marks the lease's name done with value for ttl, then
// releases the lease: on a single Redis in one script, one round trip;
// otherwise Mark, then Unlock. The mark is written even if the lease was
// lost meanwhile (the work it records is done either way); the error then
// wraps ErrNotHeld, as Unlock's does.
func (le *Lease) MarkAndUnlock(ctx context.Context, value string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("lock: mark %q: ttl must be positive", le.name)
	}
	if len(le.l.clients) != 1 {
		if err := le.l.Mark(ctx, le.name, value, ttl); err != nil {
			_ = le.Unlock(ctx)
			return err
		}
		return le.Unlock(ctx)
	}
	keys := []string{le.key, le.key + markSuffix}
	return le.markRelease(ctx, func(ctx context.Context) (bool, error) {
		ours, err := markReleaseScript.Run(ctx, le.l.clients[0], keys, le.m.Value(), value, ttl.Milliseconds()).Int64()
		return ours == 1, err
	})
}

// Release is what a fused mark-and-release (MarkAndUnlockWith) must do on
// the lease's server: set MarkKey to Mark for MarkTTL, and delete LockKey
// if it still holds LockValue.
type Release struct {
	LockKey, LockValue string
	MarkKey, Mark      string
	MarkTTL            time.Duration
}

// MarkAndUnlockWith is MarkAndUnlock for a caller that marks and releases
// in a script of its own, together with its own writes on the same server
// (the worker stores a task's result so: one round trip for all three).
// run does what r says and reports whether LockKey still held LockValue.
// ok is false, and nothing is done, unless the Locker is one plain Redis
// server (see SameServer); the caller then uses MarkAndUnlock.
func (le *Lease) MarkAndUnlockWith(ctx context.Context, value string, ttl time.Duration,
	run func(ctx context.Context, r Release) (released bool, err error)) (ok bool, err error) {
	if !le.l.plain {
		return false, nil
	}
	if ttl <= 0 {
		return true, fmt.Errorf("lock: mark %q: ttl must be positive", le.name)
	}
	r := Release{LockKey: le.key, LockValue: le.m.Value(), MarkKey: le.key + markSuffix, Mark: value, MarkTTL: ttl}
	return true, le.markRelease(ctx, func(ctx context.Context) (bool, error) { return run(ctx, r) })
}

// markRelease ends the lease's renewals and runs release, which marks and
// deletes the lock key if it still holds our value.
func (le *Lease) markRelease(ctx context.Context, release func(context.Context) (bool, error)) error {
	prior := le.Err()
	le.end(ErrReleased)
	le.keepers.Wait()
	le.op.Lock()
	ours, err := release(ctx)
	le.op.Unlock()
	switch {
	case err != nil:
		return fmt.Errorf("lock: mark %q: %w", le.name, err)
	case prior == ErrReleased:
		return fmt.Errorf("lock %q: %w: already unlocked", le.name, ErrNotHeld)
	case prior != nil:
		return fmt.Errorf("lock %q: %w: %w", le.name, ErrNotHeld, prior)
	case !ours:
		return fmt.Errorf("lock %q: %w: the key no longer holds our value", le.name, ErrNotHeld)
	}
	return nil
}

// Mark records name as done, with value, for ttl.
func (l *Locker) Mark(ctx context.Context, name, value string, ttl time.Duration) error {
	if name == "" {
		return errors.New("lock: empty lock name")
	}
	if ttl <= 0 {
		return fmt.Errorf("lock: mark %q: ttl must be positive", name)
	}
	// Every server is written, not just the first majority to answer, so
	// losing one server later still leaves a majority with the mark.
	key := l.markKey(name)
	errs := make(chan error, len(l.clients))
	for _, c := range l.clients {
		go func() { errs <- c.Set(ctx, key, value, ttl).Err() }()
	}
	var failed []error
	for range l.clients {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(l.clients)-len(failed) < l.quorum {
		return fmt.Errorf("lock: mark %q: %w: %w", name, ErrNoQuorum, errors.Join(failed...))
	}
	return nil
}

// Marked returns the mark recorded for name, if a majority can be read.
func (l *Locker) Marked(ctx context.Context, name string) (value string, found bool, err error) {
	key := l.markKey(name)
	if len(l.clients) == 1 {
		v, err := l.clients[0].Get(ctx, key).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("lock: read mark %q: %w", name, err)
		}
		return v, true, nil
	}
	type result struct {
		v     string
		found bool
		err   error
	}
	ch := make(chan result, len(l.clients))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, c := range l.clients {
		go func() {
			v, err := c.Get(ctx, key).Result()
			if errors.Is(err, goredis.Nil) {
				ch <- result{}
				return
			}
			ch <- result{v: v, found: err == nil, err: err}
		}()
	}
	answered := 0
	var errs []error
	for range l.clients {
		r := <-ch
		if r.err != nil {
			errs = append(errs, r.err)
			if len(errs) > len(l.clients)-l.quorum {
				break
			}
			continue
		}
		if r.found {
			return r.v, true, nil
		}
		if answered++; answered >= l.quorum {
			return "", false, nil
		}
	}
	return "", false, fmt.Errorf("lock: read mark %q: %w: %w", name, ErrNoQuorum, errors.Join(errs...))
}
