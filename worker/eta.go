package worker

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/clock"
)

// etaHolder keeps tasks whose ETA is in the future until they are due,
// without blocking other work: one timer for the earliest task, and the
// broker's prefetch raised by the number held (as Celery does; see
// prefetcher) so held messages don't starve the worker of new ones.
//
// Unlike Celery, memory stays bounded: a task due later than the hold
// horizon (Config.ETAHoldHorizon), or arriving while ETAHoldLimit tasks are
// already held, is parked in the broker instead — republished with
// PublishAt to come back to its queue shortly before its ETA (parkMargin),
// and its original message acked. Parked messages cost the worker nothing,
// survive worker restarts, and are never redelivered early by a visibility
// timeout or killed by RabbitMQ's consumer_timeout. Back in the queue, the
// task is held in memory for its last seconds and starts on time.
type etaHolder struct {
	w       *Worker
	mu      sync.Mutex
	h       etaHeap
	timer   clock.Timer
	timerAt time.Time
	stopped bool
}

func newETAHolder(w *Worker) *etaHolder { return &etaHolder{w: w} }

// parkMargin is how long before its ETA a parked task comes back; it
// covers the delay queues' one-second resolution and broker latency.
const parkMargin = 2 * time.Second

func (e *etaHolder) hold(j *job) {
	delay := j.t.ETA.Sub(e.w.now())
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		e.w.requeue(j)
		return
	}
	if delay > e.w.cfg.ETAHoldHorizon || (len(e.h) >= e.w.cfg.ETAHoldLimit && delay > parkMargin+time.Second) {
		e.mu.Unlock()
		if e.w.park(j) {
			return
		}
		e.mu.Lock()
	}
	heap.Push(&e.h, j)
	n := len(e.h)
	e.rearmLocked()
	e.mu.Unlock()
	e.w.setPrefetch(n)
}

// rearmLocked points the timer at the earliest ETA.
func (e *etaHolder) rearmLocked() {
	if len(e.h) == 0 {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		return
	}
	at := *e.h[0].t.ETA
	if e.timer != nil && e.timerAt.Equal(at) {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timerAt = at
	e.timer = e.w.clock.AfterFunc(at.Sub(e.w.now()), e.fire)
}

// fire releases every due task to the run queue.
func (e *etaHolder) fire() {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	now := e.w.now()
	var due []*job
	for len(e.h) > 0 && !e.h[0].t.ETA.After(now) {
		due = append(due, heap.Pop(&e.h).(*job))
	}
	e.timer = nil
	e.rearmLocked()
	n := len(e.h)
	e.mu.Unlock()
	for _, j := range due {
		e.w.schedule(j)
	}
	if len(due) > 0 {
		e.w.setPrefetch(n)
	}
}

// len reports how many tasks are held.
func (e *etaHolder) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.h)
}

// snapshot lists the held jobs (for remote control's "scheduled").
func (e *etaHolder) snapshot() []*job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*job(nil), e.h...)
}

// stop returns every held task to the broker (they keep their ETA).
func (e *etaHolder) stop() {
	e.mu.Lock()
	e.stopped = true
	if e.timer != nil {
		e.timer.Stop()
	}
	held := e.h
	e.h = nil
	e.mu.Unlock()
	for _, j := range held {
		e.w.requeue(j)
	}
}

// park republishes j to come back shortly before its ETA and acks the
// original. It reports false (the caller holds the task instead) if the
// broker refused; a crash between the publish and the ack leaves two
// copies, which the exactly-once guard collapses.
func (w *Worker) park(j *job) bool {
	at := j.t.ETA.Add(-parkMargin)
	queue, exchange, rk := retryRoute(j)
	if exchange == "" {
		rk = queue
	}
	ctx, cancel := settleCtx()
	defer cancel()
	err := w.cfg.Broker.PublishAt(ctx, broker.Publishing{Exchange: exchange, RoutingKey: rk, Message: j.d.Message}, at)
	if err != nil {
		w.log.Warn("parking an ETA task in the broker failed; holding it in memory", logTaskID, j.t.ID, logTask, j.name(), "error", err)
		return false
	}
	w.parked.Add(1)
	w.log.Debug("ETA task parked in the broker", logTaskID, j.t.ID, logTask, j.name(), "eta", j.t.ETA, "back_at", at)
	w.ack(j)
	return true
}

// prefetcher raises the broker's prefetch by the number of ETA tasks held,
// in the background and coalesced. On RabbitMQ every change is a new
// consumer (three round trips), so applying one per held task would slow a
// burst of ETA tasks to a crawl; instead the latest count is applied, and
// in steps of the base prefetch, so a thousand held tasks cost a few
// changes. The prefetch may exceed base+held by less than one step.
type prefetcher struct {
	held    atomic.Int64
	applied atomic.Int64
	kick    chan struct{} // capacity 1: "held changed"
}

// setPrefetch records how many tasks are held; prefetchLoop applies it.
func (w *Worker) setPrefetch(held int) {
	w.pf.held.Store(int64(held))
	select {
	case w.pf.kick <- struct{}{}:
	default:
	}
}

// prefetchFor is the prefetch that leaves room for held tasks.
func (w *Worker) prefetchFor(held int) int {
	base := w.prefetch()
	steps := (held + base - 1) / base
	return base * (1 + steps)
}

// prefetchLoop applies prefetch changes until consuming stops.
func (w *Worker) prefetchLoop(c broker.Consumer) {
	defer w.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a SetPrefetch under way must not hold up Shutdown
		select {
		case <-w.stopped:
		case <-ctx.Done():
		}
		cancel()
	}()
	for {
		select {
		case <-w.stopped:
			return
		case <-w.pf.kick:
		}
		want := w.prefetchFor(int(w.pf.held.Load()))
		if int64(want) == w.pf.applied.Load() {
			continue
		}
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.SetPrefetch(tctx, want)
		tcancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("raising prefetch for held ETA tasks failed", "prefetch", want, "error", err)
			}
			continue
		}
		w.pf.applied.Store(int64(want))
	}
}

type etaHeap []*job

func (h etaHeap) Len() int           { return len(h) }
func (h etaHeap) Less(i, j int) bool { return h[i].t.ETA.Before(*h[j].t.ETA) }
func (h etaHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *etaHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *etaHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}
