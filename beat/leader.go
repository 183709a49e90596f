package beat

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/celeriac/celeriac/lock"
)

// batchSize bounds the entries advanced by one script call.
const batchSize = 500

func (b *Beat) run(ctx context.Context) {
	for ctx.Err() == nil {
		lease, err := b.locker.Lock(ctx, b.cfg.Name+":leader", lock.WithExpiry(b.cfg.LeaseTTL))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("beat: cannot reach the lease; retrying", "err", err)
			b.sleep(ctx, b.cfg.LeaseTTL/4)
			continue
		}
		lctx := lease.KeepAlive(ctx, b.cfg.LeaseTTL/3)
		b.log.Info("beat: leading", "token", lease.Token())
		err = b.lead(lctx, lease.Token())
		b.leader.Store(false)
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = lease.Unlock(uctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			b.log.Info("beat: stopped")
			return
		case errors.Is(err, ErrStale):
			b.log.Warn("beat: another beat leads with a newer token; standing by")
		default:
			b.log.Warn("beat: lost the lead; standing by", "err", err, "cause", context.Cause(lctx))
		}
	}
}

// sleep waits d of real time or until ctx ends.
func (b *Beat) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lead dispatches due entries while ctx (the lease) lasts.
func (b *Beat) lead(ctx context.Context, token uint64) error {
	// Claim the fence first: from now on an older leader's writes fail.
	if _, err := b.st.advance(ctx, token, false, nil); err != nil {
		return err
	}
	if err := b.syncSource(ctx, true); err != nil {
		b.log.Error("beat: schedule source", "err", err)
	}
	if err := b.load(ctx, token); err != nil {
		return err
	}
	b.leader.Store(true)
	nextSync := b.clk.Now().Add(b.cfg.SyncInterval)
	tick := make(chan struct{}, 1)
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		now := b.clk.Now()
		if b.cfg.Source != nil && !now.Before(nextSync) {
			if err := b.syncSource(ctx, false); err != nil {
				b.log.Error("beat: schedule source", "err", err)
			}
			nextSync = now.Add(b.cfg.SyncInterval)
		}
		due, wait := b.collect(now)
		if len(due) > 0 {
			if err := b.dispatch(ctx, token, due, now); err != nil {
				return err
			}
			continue
		}
		if b.cfg.Source != nil {
			wait = min(wait, nextSync.Sub(now))
		}
		if b.testIdle != nil {
			b.testIdle(now)
		}
		t := b.clk.AfterFunc(wait, func() {
			select {
			case tick <- struct{}{}:
			default:
			}
		})
		select {
		case <-ctx.Done():
		case <-b.wake:
		case <-tick:
		}
		t.Stop()
	}
}

// load reads the run history and queues every entry; entries without one
// are seeded with now (under the fence), so a successor counts from the
// same point.
func (b *Beat) load(ctx context.Context, token uint64) error {
	stored, err := b.st.lastRuns(ctx)
	if err != nil {
		return err
	}
	now := b.clk.Now()
	b.mu.Lock()
	b.queue = b.queue[:0]
	var seeds []advance
	for name, it := range b.entries {
		it.index = -1
		it.last, it.lastRaw = time.Time{}, ""
		if raw, ok := stored[name]; ok {
			if t, ok := decodeTime(raw); ok {
				it.last, it.lastRaw = t, raw
			}
		}
		if it.lastRaw == "" {
			b.seed(it, now)
			if it.lastRaw != "" {
				seeds = append(seeds, advance{name: name, next: it.lastRaw})
			}
		}
		b.schedule(it, now)
	}
	b.mu.Unlock()
	return b.writeSeeds(ctx, token, seeds)
}

// seed picks an entry's starting point when Redis has none; b.mu held.
func (b *Beat) seed(it *item, now time.Time) {
	it.last = it.e.LastRunAt
	if it.last.IsZero() {
		b.schedule(it, now) // sets last = now unless clocked
		b.unqueue(it)
	}
	if !it.last.IsZero() {
		it.lastRaw = encodeTime(it.last)
		it.last, _ = decodeTime(it.lastRaw)
	}
}

func (b *Beat) writeSeeds(ctx context.Context, token uint64, seeds []advance) error {
	for len(seeds) > 0 {
		n := min(len(seeds), batchSize)
		ok, err := b.st.advance(ctx, token, false, seeds[:n])
		if err != nil {
			return err
		}
		for i, took := range ok {
			if !took { // another beat seeded it meanwhile: use its value
				b.refresh(ctx, seeds[i].name)
			}
		}
		seeds = seeds[n:]
	}
	return nil
}

// refresh rereads one entry's last run after a conflicting write.
func (b *Beat) refresh(ctx context.Context, name string) {
	raw, err := b.st.lastRun(ctx, name)
	if err != nil {
		b.log.Warn("beat: reread last run", "entry", name, "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	it, ok := b.entries[name]
	if !ok {
		return
	}
	if t, ok := decodeTime(raw); ok {
		it.last, it.lastRaw = t, raw
	}
	b.schedule(it, b.clk.Now())
}

// collect pops up to batchSize due entries, or says how long to wait.
func (b *Beat) collect(now time.Time) ([]*item, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var due []*item
	for len(b.queue) > 0 && len(due) < batchSize && !b.queue[0].next.After(now) {
		due = append(due, heap.Pop(&b.queue).(*item))
	}
	if len(due) > 0 {
		return due, 0
	}
	if len(b.queue) == 0 {
		return nil, b.cfg.MaxLoopInterval
	}
	return nil, min(b.queue[0].next.Sub(now), b.cfg.MaxLoopInterval)
}

// run is one entry's dispatch as decided under the fence.
type run struct {
	it   *item
	e    Entry
	due  time.Time
	send bool
}

// dispatch advances the due entries in Redis (fenced) and then sends
// their messages. Advancing first, as Celery does, means a crash between
// the two loses that one run rather than sending it twice.
func (b *Beat) dispatch(ctx context.Context, token uint64, due []*item, now time.Time) error {
	nowRaw := encodeTime(now)
	nowT, _ := decodeTime(nowRaw)
	ups := make([]advance, len(due))
	for i, it := range due {
		ups[i] = advance{name: it.e.Name, prev: it.lastRaw, next: nowRaw}
	}
	ok, err := b.st.advance(ctx, token, true, ups)
	if err != nil {
		// Nothing was advanced: put the entries back to retry (or for
		// whoever leads next, who reads the same history).
		b.mu.Lock()
		for _, it := range due {
			if b.entries[it.e.Name] == it && it.index < 0 {
				heap.Push(&b.queue, it)
			}
		}
		b.mu.Unlock()
		if errors.Is(err, ErrStale) {
			return err
		}
		b.log.Error("beat: cannot record runs; retrying", "err", err)
		b.sleep(ctx, time.Second)
		return nil
	}
	var runs []run
	var conflicts []string
	b.mu.Lock()
	for i, it := range due {
		if !ok[i] {
			conflicts = append(conflicts, it.e.Name)
			continue
		}
		r := run{it: it, e: it.e, due: it.next, send: true}
		if b.cfg.CatchUp == CatchUpSkip && now.Sub(it.next) > b.cfg.LeaseTTL {
			r.send = false
		}
		it.last, it.lastRaw = nowT, nowRaw
		if b.entries[it.e.Name] == it {
			if it.e.OneOff {
				delete(b.entries, it.e.Name)
			} else {
				b.schedule(it, now)
			}
		}
		runs = append(runs, r)
	}
	b.mu.Unlock()
	for _, name := range conflicts {
		b.log.Warn("beat: entry was advanced by another beat; rereading", "entry", name)
		b.refresh(ctx, name)
	}
	// These runs are recorded as ours: send them even if the lease ends
	// meanwhile (a successor will not send them again), within a bound.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	b.send(sctx, runs, now)
	return nil
}

// sendTimeout bounds the sends of one dispatch batch.
const sendTimeout = 30 * time.Second

func (b *Beat) send(ctx context.Context, runs []run, now time.Time) {
	sem := make(chan struct{}, b.cfg.PublishConcurrency)
	var wg sync.WaitGroup
	for _, r := range runs {
		if !r.send {
			b.log.Warn("beat: skipping a missed run (catch-up policy skip)", "entry", r.e.Name, "due", r.due)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.sendOne(ctx, r, now)
		}()
	}
	wg.Wait()
}

func (b *Beat) sendOne(ctx context.Context, r run, now time.Time) {
	var id string
	var err error
	for attempt := range 3 {
		ar, serr := b.cfg.Producer.Send(ctx, r.e.Task, r.e.Args, r.e.Kwargs, r.e.sendOptions()...)
		if err = serr; err == nil {
			id = ar.ID
			break
		}
		if ctx.Err() != nil || attempt == 2 {
			break
		}
		b.sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond)
	}
	if err != nil {
		b.log.Error("beat: send failed; this run is lost", "entry", r.e.Name, "task", r.e.Task, "err", err)
		return
	}
	b.log.Info("beat: sending due task", "entry", r.e.Name, "task", r.e.Task, "id", id)
	if rec, ok := b.cfg.Source.(Recorder); ok && r.it.origin == fromSource {
		if err := rec.Record(ctx, r.e.Name, now, r.e.OneOff); err != nil {
			b.log.Warn("beat: write back run to the source", "entry", r.e.Name, "err", err)
		}
	}
	if b.cfg.OnDispatch != nil {
		b.cfg.OnDispatch(Dispatch{Entry: r.e.Name, TaskID: id, Due: r.due, Sent: b.clk.Now()})
	}
}
