package worker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrTerminated cancels a running task's context when it is revoked with
// terminate; its result is then REVOKED ("terminated"), not FAILURE.
var ErrTerminated = errors.New("worker: task revoked and terminated")

// Celery's bounds for the revoked set (worker/state.py).
const (
	revokesMax     = 50000
	revokesExpires = 3 * time.Hour
)

// RevokedStore persists revocations, so they survive worker restarts and
// reach workers started later — Celery keeps them only in memory. The
// Redis result backend implements it; the worker uses it when
// Config.Revoked is nil and the backend does.
type RevokedStore interface {
	AddRevoked(ctx context.Context, ids []string, ttl time.Duration) error
	LoadRevoked(ctx context.Context) ([]string, error)
}

// revokedSet is Celery's LimitedSet: at most revokesMax ids, each
// forgotten revokesExpires after it was added.
type revokedSet struct {
	mu    sync.Mutex
	ids   map[string]time.Time // id -> expiry
	order []string             // insertion order, for eviction
}

func newRevokedSet() *revokedSet { return &revokedSet{ids: map[string]time.Time{}} }

func (s *revokedSet) add(now time.Time, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; !ok {
			s.order = append(s.order, id)
		}
		s.ids[id] = now.Add(revokesExpires)
	}
	for len(s.ids) > revokesMax && len(s.order) > 0 {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	if len(s.order) > 2*revokesMax {
		s.compactLocked()
	}
}

func (s *revokedSet) compactLocked() {
	kept := s.order[:0]
	for _, id := range s.order {
		if _, ok := s.ids[id]; ok {
			kept = append(kept, id)
		}
	}
	s.order = kept
}

func (s *revokedSet) has(now time.Time, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.ids[id]
	if ok && now.After(exp) {
		delete(s.ids, id)
		return false
	}
	return ok
}

func (s *revokedSet) list(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.ids))
	for _, id := range s.order {
		if exp, ok := s.ids[id]; ok && now.Before(exp) {
			out = append(out, id)
		}
	}
	return out
}

// Revoke marks task ids as revoked: a revoked task that has not started
// is not run and REVOKED is stored; with terminate, a running one has its
// context cancelled with ErrTerminated. Revocations are persisted in the
// RevokedStore when there is one.
func (w *Worker) Revoke(ctx context.Context, ids []string, terminate bool) error {
	w.revoked.add(w.now(), ids...)
	if terminate {
		for _, id := range ids {
			if v, ok := w.active.Load(id); ok {
				if c := v.(*job).cancel; c != nil {
					c(ErrTerminated)
				}
			}
		}
	}
	if w.revokedStore != nil {
		if err := w.revokedStore.AddRevoked(ctx, ids, revokesExpires); err != nil {
			return err
		}
	}
	return nil
}

// Revoked lists the ids currently revoked.
func (w *Worker) Revoked() []string { return w.revoked.list(w.now()) }

// loadRevoked reads persisted revocations at start-up.
func (w *Worker) loadRevoked(ctx context.Context) {
	if w.revokedStore == nil {
		return
	}
	ids, err := w.revokedStore.LoadRevoked(ctx)
	if err != nil {
		w.log.Warn("loading revoked task ids failed; starting with none", "error", err)
		return
	}
	w.revoked.add(w.now(), ids...)
	if len(ids) > 0 {
		w.log.Info("loaded revoked task ids", "count", len(ids))
	}
}

func (w *Worker) checkRevoked(j *job) bool {
	if !w.revoked.has(w.now(), j.t.ID) {
		return true
	}
	w.revoke(j, "revoked", false)
	return false
}
