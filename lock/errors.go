package lock

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors. Test with errors.Is: a *TakenError is ErrTaken, ErrExpired is
// also ErrLost.
var (
	// ErrTaken: another holder has the lock.
	ErrTaken = errors.New("lock: taken")
	// ErrLost: the lease is no longer held — its key was deleted or taken
	// over, or (ErrExpired) it ran out before it was renewed.
	ErrLost = errors.New("lock: lease lost")
	// ErrExpired: the lease's validity time passed before a renewal.
	ErrExpired = fmt.Errorf("%w: expired before it was renewed", ErrLost)
	// ErrReleased: Unlock was called; the cause reported by a released
	// lease's Err and KeepAlive context.
	ErrReleased = errors.New("lock: lease released")
	// ErrNotHeld: Unlock found the lock no longer ours (it had expired or
	// been taken over).
	ErrNotHeld = errors.New("lock: not held")
	// ErrNoQuorum: too few Redis servers answered to reach a majority.
	ErrNoQuorum = errors.New("lock: no quorum of Redis servers")
)

// TakenError is returned by TryLock when another holder has the lock.
type TakenError struct {
	Name string
	// Nodes lists the servers (indexes into Config.Clients) that refused.
	Nodes []int
	// RetryAfter is how long the current holder's lease still runs on
	// those servers (the largest PTTL); 0 when unknown.
	RetryAfter time.Duration
	// Err holds the other servers' errors when some did not answer.
	Err error
}

func (e *TakenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lock: %q is taken", e.Name)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (free in at most %v)", e.RetryAfter.Round(time.Millisecond))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, "; %v", e.Err)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrTaken) true.
func (e *TakenError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrTaken, e.Err}
	}
	return []error{ErrTaken}
}
