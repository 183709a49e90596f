// Package memory is an in-process result backend with the Redis backend's
// rules (a stored SUCCESS is never overwritten; waiters are notified), for
// unit tests and examples.
//
//	rb, _ := broker.OpenBackend(ctx, "memory://", broker.BackendOptions{})
package memory

import (
	"context"
	"net/url"
	"sync"

	"github.com/celeriac/celeriac/broker"
)

func init() {
	broker.RegisterBackend(func(ctx context.Context, rawURL string, opts broker.BackendOptions) (broker.ResultBackend, error) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, err
		}
		return Named(u.Host + u.Path), nil
	}, "memory")
}

var (
	namedMu sync.Mutex
	named   = map[string]*Backend{}
)

// Named returns the process-wide backend of that name, creating it; URLs
// memory://NAME open it, so a worker and a producer in one process share it.
func Named(name string) *Backend {
	namedMu.Lock()
	defer namedMu.Unlock()
	b, ok := named[name]
	if !ok {
		b = New()
		named[name] = b
	}
	return b
}

var _ broker.ResultBackend = (*Backend)(nil)

// Backend keeps results in a map.
type Backend struct {
	mu      sync.Mutex
	metas   map[string]*broker.ResultMeta
	history map[string][]broker.State
	waiters map[string][]chan struct{}
}

// New returns an empty backend.
func New() *Backend {
	return &Backend{metas: map[string]*broker.ResultMeta{}, history: map[string][]broker.State{}, waiters: map[string][]chan struct{}{}}
}

// Store implements broker.ResultBackend.
func (b *Backend) Store(ctx context.Context, meta *broker.ResultMeta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Round-trip through JSON so readers see what a real backend returns.
	raw, err := broker.MarshalJSON(meta.ToMap())
	if err != nil {
		return err
	}
	v, err := broker.UnmarshalJSON(raw)
	if err != nil {
		return err
	}
	stored, err := broker.MetaFromMap(v)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.metas[meta.TaskID]; ok && old.Status == broker.StateSuccess {
		return nil
	}
	b.metas[meta.TaskID] = stored
	b.history[meta.TaskID] = append(b.history[meta.TaskID], meta.Status)
	for _, c := range b.waiters[meta.TaskID] {
		close(c)
	}
	delete(b.waiters, meta.TaskID)
	return nil
}

// Get implements broker.ResultBackend.
func (b *Backend) Get(ctx context.Context, id string) (*broker.ResultMeta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.metas[id]; ok {
		c := *m
		return &c, nil
	}
	return &broker.ResultMeta{TaskID: id, Status: broker.StatePending}, nil
}

// Wait implements broker.ResultBackend.
func (b *Backend) Wait(ctx context.Context, id string) (*broker.ResultMeta, error) {
	for {
		b.mu.Lock()
		if m, ok := b.metas[id]; ok && m.Status.Ready() {
			c := *m
			b.mu.Unlock()
			return &c, nil
		}
		ch := make(chan struct{})
		b.waiters[id] = append(b.waiters[id], ch)
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Forget implements broker.ResultBackend.
func (b *Backend) Forget(ctx context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.metas, id)
	return nil
}

// History returns every state stored for id, in order (for tests).
func (b *Backend) History(id string) []broker.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]broker.State(nil), b.history[id]...)
}

// Close implements broker.ResultBackend.
func (b *Backend) Close() error { return nil }
