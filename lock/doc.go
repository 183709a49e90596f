// Package lock provides distributed locks on Redis — one server or, with
// Redlock (github.com/go-redsync/redsync), a majority of several
// independent masters — with leases that renew themselves, report their
// loss, and carry a fencing token.
//
//	lk, err := lock.New(lock.Config{Clients: []goredis.UniversalClient{rdb}})
//	if err != nil {
//		return err
//	}
//	lease, err := lk.Lock(ctx, "nightly-report", lock.WithExpiry(15*time.Second))
//	if err != nil {
//		return err // ctx ended while someone else held it
//	}
//	defer lease.Unlock(context.Background())
//	work := lease.KeepAlive(ctx, 5*time.Second) // cancelled if the lease is lost
//	return generate(work, lease.Token())          // pass the token to what you write
//
// TryLock makes a single attempt and returns a *TakenError (errors.Is
// ErrTaken) saying how long the current holder's lease still runs.
//
// # What a lock does and does not guarantee
//
// While a lease is valid no other caller gets one for the same name —
// under Redlock's assumptions: clocks that drift little, and processes
// that do not pause for longer than the lease. A holder that stops for
// longer (GC, swap, SIGSTOP) can wake up believing it still holds a lock
// someone else has taken since. KeepAlive shrinks that window (its context
// is cancelled as soon as a renewal finds the lock gone, or the lease's
// time runs out) but cannot close it. The fencing token closes it where
// the protected resource can check: every lease gets a token larger than
// any issued before for that name, so a resource that remembers the
// largest token it has accepted can refuse a stale holder's write, and
// CheckToken tells a holder whether anyone has acquired the lock since.
//
// With one Redis the token is an INCR. With N masters it is read from a
// majority (take the max) and written back to a majority with
// "set if greater"; any two majorities share a server, so tokens stay
// monotonic even when different acquisitions reach different majorities
// (INCR-on-a-majority-and-take-the-max does not: see fence.go). A name's
// token counter lives for Config.TokenTTL after its last use.
//
// Keys are <Prefix>{<name>} and <Prefix>{<name>}:token, in one Cluster
// hash slot, so a Redis Cluster works as one of the Clients.
//
// # Marks, and work done in the lease's own round trips
//
// Mark records that the work a name protects is finished (the worker's
// exactly-once guard marks a task id done); Marked reads it back from a
// majority. On one Redis the acquisition script also reads the mark
// (Lease.MarkSeen), and with WithPeek any other key of the caller's on the
// same server (Locker.SameServer), so checking before working costs no
// extra trip; MarkAndUnlock marks and releases in one script, and
// MarkAndUnlockWith lets the caller fold its own writes into that script.
package lock
