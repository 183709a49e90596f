package worker

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/lock"
)

// The exactly-once guard.
//
// Brokers deliver at least once: a message is redelivered after a worker
// crash, a duplicate publish puts it twice in a queue, kombu's Redis
// visibility timeout restores it while it still runs, a beat fires twice.
// The guard collapses all of these into one completion per task id:
//
//  1. Before running, the worker takes a short lease on the id
//     (Config.GuardLease, renewed while the task runs). A copy that finds
//     the lease held is neither run nor lost: it is parked in the broker
//     and checks again a moment later. A crashed holder's lease lapses
//     within seconds, so its task becomes runnable again quickly, not
//     after a visibility timeout.
//  2. Under the lease, a task whose id is marked done (or whose result
//     backend holds a ready state, e.g. written by a Python worker) is a
//     duplicate: the lease is released, the message acked, nothing run.
//  3. The lease's fencing token, larger than any issued before for the id,
//     is in the handler's Request: pass it to what the task writes so a
//     stale holder (one paused past its lease) can be refused. Losing the
//     lease cancels the task's context with lock.ErrLost; its outcome is
//     then not recorded and the message goes back to the broker.
//  4. The terminal state is stored and the id marked done (kept for
//     Config.GuardWindow) before the lease is released and the message
//     acked.
//
// Guaranteed: a task id completes (reaches a stored terminal state) once,
// and never runs on two workers at the same time while leases hold.
// Not guaranteed: a handler whose side effect happened before a crash, but
// whose terminal state was not yet stored, runs again — guard such writes
// with the fencing token or make them idempotent.

const (
	// guardRecheck is how long a copy that found the lease held waits in
	// the broker before checking again.
	guardRecheck = 2 * time.Second
	// guardUnavailableRetry is how long a task waits when the guard's Redis
	// cannot be reached.
	guardUnavailableRetry = 5 * time.Second
)

func guardName(id string) string { return "task:" + id }

// statePeeker is a result backend on Redis (backend/redis is one). When it
// is the guard's own Redis server, step 2 reads the task's stored state in
// the lease's acquisition script instead of asking the backend afterwards:
// one round trip fewer per task.
type statePeeker interface {
	Client() goredis.UniversalClient
	StateKey(taskID string) string
	StateOf(raw []byte) (broker.State, bool)
}

// storeReleaser is a result backend that stores a terminal state and ends
// the guard (step 4: mark done, release) in one script on the guard's own
// server (backend/redis is one): one round trip for the three.
type storeReleaser interface {
	StoreAndRelease(ctx context.Context, meta *broker.ResultMeta,
		lockKey, lockValue, markKey, mark string, markTTL time.Duration) (released bool, err error)
}

// guardBackendFor returns the backend's fast paths for the guard, when the
// backend lives on the guard's own Redis server; nil otherwise.
func guardBackendFor(cfg Config) (statePeeker, storeReleaser) {
	p, ok := cfg.Backend.(statePeeker)
	if !ok || cfg.Locker == nil || !cfg.Locker.SameServer(p.Client()) {
		return nil, nil
	}
	sr, _ := cfg.Backend.(storeReleaser)
	return p, sr
}

// storeReleasing stores meta (a terminal state) and applies step 4 in one
// script when the backend allows; false means the caller stores as usual
// and guardExit follows.
func (w *Worker) storeReleasing(ctx context.Context, j *job, meta *broker.ResultMeta) bool {
	if w.fuse == nil || j.lease == nil {
		return false
	}
	ok, err := j.lease.MarkAndUnlockWith(ctx, string(meta.Status), w.cfg.GuardWindow,
		func(ctx context.Context, r lock.Release) (bool, error) {
			return w.fuse.StoreAndRelease(ctx, meta, r.LockKey, r.LockValue, r.MarkKey, r.Mark, r.MarkTTL)
		})
	if !ok {
		return false
	}
	if err != nil && !errors.Is(err, lock.ErrNotHeld) {
		w.log.Error("storing task state failed", logTaskID, j.t.ID, logTask, j.name(), logState, string(meta.Status), "error", err)
	}
	w.guardExited(j, err)
	return true
}

// guarded reports whether j runs under the guard.
func (w *Worker) guarded(j *job) bool {
	return w.cfg.Locker != nil && !j.reg.unguarded
}

// guardEnter applies steps 1 and 2; false means j was settled here.
func (w *Worker) guardEnter(j *job) bool {
	if !w.guarded(j) {
		return true
	}
	ctx, cancel := settleCtx()
	defer cancel()
	// The lease comes first and the done check after it: a holder marks
	// the id done before releasing its lease, so a check made under the
	// lease cannot miss a completion, and one round trip is saved over
	// checking both before and after.
	opts := []lock.Option{lock.WithExpiry(w.cfg.GuardLease)}
	if w.peek != nil {
		opts = append(opts, lock.WithPeek(w.peek.StateKey(j.t.ID)))
	}
	lease, err := w.cfg.Locker.TryLock(ctx, guardName(j.t.ID), opts...)
	var taken *lock.TakenError
	switch {
	case errors.As(err, &taken):
		w.metrics.guard.WithLabelValues("busy").Inc()
		wait := max(taken.RetryAfter, guardRecheck)
		if w.parkFor(j, wait, "lease held by another worker") {
			return false
		}
		w.reject(j, true, "lease held by another worker and parking failed")
		return false
	case err != nil:
		w.guardUnavailable(j, err)
		return false
	}
	if st, done, err := w.doneState(ctx, j, lease); err != nil {
		_ = lease.Unlock(ctx)
		w.guardUnavailable(j, err)
		return false
	} else if done {
		_ = lease.Unlock(ctx)
		w.duplicate(j, st)
		return false
	}
	j.lease = lease
	w.metrics.guard.WithLabelValues("run").Inc()
	return true
}

// doneState reports a terminal state recorded for j's id: the guard's mark,
// or a ready state in the result backend.
func (w *Worker) doneState(ctx context.Context, j *job, lease *lock.Lease) (string, bool, error) {
	st, found, read := lease.MarkSeen() // read with the lease, on one Redis
	if !read {
		var err error
		if st, found, err = w.cfg.Locker.Marked(ctx, guardName(j.t.ID)); err != nil {
			return "", false, err
		}
	}
	if found {
		return st, true, nil
	}
	if w.peek != nil {
		if raw, found, read := lease.Peeked(); read {
			if s, ok := w.peek.StateOf([]byte(raw)); found && ok && s.Ready() {
				return string(s), true, nil
			}
			return "", false, nil
		}
	}
	if w.cfg.Backend != nil {
		m, err := w.cfg.Backend.Get(ctx, j.t.ID)
		if err == nil && m.Status.Ready() {
			return string(m.Status), true, nil
		}
	}
	return "", false, nil
}

func (w *Worker) duplicate(j *job, state string) {
	w.metrics.guard.WithLabelValues("duplicate").Inc()
	w.log.Info("duplicate delivery of a finished task: acked, not run", logTaskID, j.t.ID, logTask, j.name(), logState, state)
	w.ack(j)
}

// guardUnavailable parks j for a while when the guard's Redis fails: the
// promise is not to run a task twice, so it does not run unguarded.
func (w *Worker) guardUnavailable(j *job, err error) {
	w.metrics.guard.WithLabelValues("error").Inc()
	w.log.Error("exactly-once guard unavailable; the task will be tried again", logTaskID, j.t.ID, logTask, j.name(), "error", err)
	if !w.parkFor(j, guardUnavailableRetry, "guard unavailable") {
		w.reject(j, true, "guard unavailable and parking failed")
	}
}

// parkFor republishes j to come back after d and acks the original.
func (w *Worker) parkFor(j *job, d time.Duration, why string) bool {
	queue, exchange, rk := retryRoute(j)
	if exchange == "" {
		rk = queue
	}
	ctx, cancel := settleCtx()
	defer cancel()
	at := w.now().Add(d)
	if err := w.cfg.Broker.PublishAt(ctx, broker.Publishing{Exchange: exchange, RoutingKey: rk, Message: j.d.Message}, at); err != nil {
		w.log.Warn("parking a task failed", logTaskID, j.t.ID, "reason", why, "error", err)
		return false
	}
	w.log.Debug("task parked", logTaskID, j.t.ID, logTask, j.name(), "reason", why, "back_at", at)
	w.ack(j)
	return true
}

// leaseLost reports whether j's lease ended while it ran; then nothing of
// its outcome may be recorded.
func (w *Worker) leaseLost(j *job) bool {
	if j.lease == nil {
		return false
	}
	err := j.lease.Err()
	return err != nil && !errors.Is(err, lock.ErrReleased)
}

// guardExit applies step 4: mark the id done with its terminal state (""
// for none, e.g. a retry), then release the lease. It runs after the
// state is stored and before the message is acked.
func (w *Worker) guardExit(j *job, terminal string) {
	if j.lease == nil {
		return
	}
	ctx, cancel := settleCtx()
	defer cancel()
	var err error
	if terminal != "" {
		err = j.lease.MarkAndUnlock(ctx, terminal, w.cfg.GuardWindow)
	} else {
		err = j.lease.Unlock(ctx)
	}
	w.guardExited(j, err)
}

// guardExited reports how step 4 went; the lease is gone either way.
func (w *Worker) guardExited(j *job, err error) {
	switch {
	case err == nil, errors.Is(err, lock.ErrReleased):
	case errors.Is(err, lock.ErrNotHeld):
		w.log.Warn("releasing a task lease failed; it lapses by itself", logTaskID, j.t.ID, "error", err)
	default:
		w.log.Error("marking a task done failed; a redelivery may run it again", logTaskID, j.t.ID, "error", err)
	}
	j.lease = nil
}
