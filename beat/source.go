package beat

import (
	"context"
	"time"
)

// Source supplies entries from outside the process (django-celery-beat's
// tables). The leader polls Version every Config.SyncInterval and reloads
// Entries when it changes.
type Source interface {
	// Entries returns the source's whole current schedule.
	Entries(ctx context.Context) ([]Entry, error)
	// Version changes whenever the entries do.
	Version(ctx context.Context) (string, error)
}

// Recorder is implemented by sources that keep their own run history, as
// django-celery-beat's DatabaseScheduler does (last_run_at,
// total_run_count; one-off tasks disabled after their run).
type Recorder interface {
	Record(ctx context.Context, name string, at time.Time, oneOff bool) error
}

// syncSource reloads the source's entries if its version changed (or
// always, with force). Entries keep their run history across reloads.
func (b *Beat) syncSource(ctx context.Context, force bool) error {
	src := b.cfg.Source
	if src == nil {
		return nil
	}
	v, err := src.Version(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	same := v == b.srcVer
	b.mu.Unlock()
	if same && !force {
		return nil
	}
	entries, err := src.Entries(ctx)
	if err != nil {
		return err
	}
	now := b.clk.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.srcVer = v
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if err := e.validate(); err != nil {
			b.log.Warn("beat: ignoring a source entry", "err", err)
			continue
		}
		old, ok := b.entries[e.Name]
		if ok && old.origin != fromSource {
			b.log.Warn("beat: source entry shadowed by a configured or added entry of the same name", "entry", e.Name)
			continue
		}
		seen[e.Name] = true
		it := &item{e: e, index: -1, origin: fromSource}
		if ok {
			it.last, it.lastRaw = old.last, old.lastRaw
			b.unqueue(old)
		}
		b.entries[e.Name] = it
		if b.leader.Load() {
			b.schedule(it, now)
		}
	}
	for name, it := range b.entries {
		if it.origin == fromSource && !seen[name] {
			b.unqueue(it)
			delete(b.entries, name)
		}
	}
	return nil
}
