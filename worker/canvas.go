package worker

import (
	"github.com/celeriac/celeriac/broker"
)

// sendCallbacks sends the task's link callbacks and the next link of its
// chain with the return value prepended, and returns the result tuples of
// what it sent (the stored result's children).
func (w *Worker) sendCallbacks(j *job, value any) []any {
	var children []any
	apply := func(sig *broker.Signature, chain []broker.Signature) {
		ctx, cancel := settleCtx()
		defer cancel()
		res, err := w.producer.ApplySignature(ctx, sig, broker.ApplyOptions{
			PrependArgs: []any{value}, ParentID: j.t.ID, RootID: j.t.RootID, Chain: chain,
		})
		if err != nil {
			w.log.Error("sending a callback failed", "task_id", j.t.ID, "task", j.name(), "callback", sig.Task, "error", err)
			return
		}
		children = append(children, broker.ResultTuple(res.ID))
	}
	for i := range j.t.Callbacks {
		apply(&j.t.Callbacks[i], nil)
	}
	if n := len(j.t.Chain); n > 0 {
		// Celery keeps the chain reversed: the next task is the last one.
		next := j.t.Chain[n-1]
		apply(&next, j.t.Chain[:n-1])
	}
	return children
}

// sendErrbacks sends link_error callbacks with the failed task's id as
// their single argument, as Celery does for errbacks it cannot call
// in-process.
func (w *Worker) sendErrbacks(j *job, out *outcome) {
	for i := range j.t.Errbacks {
		ctx, cancel := settleCtx()
		sig := j.t.Errbacks[i]
		_, err := w.producer.ApplySignature(ctx, &sig, broker.ApplyOptions{
			PrependArgs: []any{j.t.ID}, ParentID: j.t.ID, RootID: j.t.RootID,
		})
		cancel()
		if err != nil {
			w.log.Error("sending an errback failed", "task_id", j.t.ID, "task", j.name(), "errback", sig.Task, "error", err)
		}
	}
}

// chordPartDone does chord accounting for a chord header member.
func (w *Worker) chordPartDone(j *job, out *outcome) {
	if j.t.Chord == nil {
		return
	}
	w.log.Warn("chord header member finished but chord joins are not supported by this worker", "task_id", j.t.ID, "group", j.t.GroupID)
}
