package broker

import (
	"context"
	"errors"
	"fmt"
)

// AsyncResult is a handle on a sent task's result, like Celery's.
type AsyncResult struct {
	ID      string
	backend ResultBackend
}

// Result returns a handle on task id's result in the producer's backend.
func (p *Producer) Result(id string) *AsyncResult {
	return &AsyncResult{ID: id, backend: p.cfg.Backend}
}

// NewAsyncResult returns a handle on task id's result in backend.
func NewAsyncResult(id string, backend ResultBackend) *AsyncResult {
	return &AsyncResult{ID: id, backend: backend}
}

// Wait blocks until the task is ready (SUCCESS, FAILURE or REVOKED) and
// returns its stored state. It listens for the backend's notification
// rather than polling. When ctx ends first the error wraps both
// ErrResultTimeout and ctx.Err().
func (r *AsyncResult) Wait(ctx context.Context) (*ResultMeta, error) {
	if r.backend == nil {
		return nil, ErrNoBackend
	}
	m, err := r.backend.Wait(ctx, r.ID)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("%w: task %s: %w", ErrResultTimeout, r.ID, ctxErr)
		}
		return nil, err
	}
	return m, nil
}

// Get waits for the task and returns its return value. A failed or revoked
// task returns a *TaskError carrying the exception type and message.
func (r *AsyncResult) Get(ctx context.Context) (any, error) {
	m, err := r.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.Err(); err != nil {
		return nil, err
	}
	return m.Result, nil
}

// GetInto waits for the task and converts its return value into dst
// (a pointer), as Convert does.
func (r *AsyncResult) GetInto(ctx context.Context, dst any) error {
	v, err := r.Get(ctx)
	if err != nil {
		return err
	}
	if err := Convert(v, dst); err != nil {
		return fmt.Errorf("broker: result of task %s: %w", r.ID, err)
	}
	return nil
}

// State returns the task's current state without waiting.
func (r *AsyncResult) State(ctx context.Context) (State, error) {
	m, err := r.Meta(ctx)
	if err != nil {
		return "", err
	}
	return m.Status, nil
}

// Meta returns the stored state document without waiting.
func (r *AsyncResult) Meta(ctx context.Context) (*ResultMeta, error) {
	if r.backend == nil {
		return nil, ErrNoBackend
	}
	return r.backend.Get(ctx, r.ID)
}

// Forget deletes the stored result.
func (r *AsyncResult) Forget(ctx context.Context) error {
	if r.backend == nil {
		return ErrNoBackend
	}
	return r.backend.Forget(ctx, r.ID)
}
