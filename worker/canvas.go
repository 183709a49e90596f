package worker

import (
	"context"

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

// chordPartDone records a chord header member's outcome in the result
// backend's native join. The part that completes the header sends the
// body with the ordered results, or fails it with Celery's ChordError —
// whether the other parts ran on Go or Python workers.
//
// A worker that dies after the join but before the body is sent and the
// chord's keys cleaned leaves the join ready: the redelivered part sends
// the body again, under the body's fixed task id, which the exactly-once
// guard collapses.
func (w *Worker) chordPartDone(j *job, out *outcome) {
	if j.t.Chord == nil || j.t.GroupID == "" {
		return
	}
	cb, ok := w.cfg.Backend.(broker.ChordBackend)
	if !ok {
		w.log.Error("chord header task finished but the result backend has no chord join; the chord body will not run",
			logTaskID, j.t.ID, "group", j.t.GroupID)
		return
	}
	part := broker.ChordPart{GroupID: j.t.GroupID, TaskID: j.t.ID, GroupIndex: j.t.GroupIndex, State: out.state, Result: out.value}
	if out.state != broker.StateSuccess {
		part.Result = out.exc.ToMap()
	}
	ctx, cancel := settleCtx()
	defer cancel()
	join, err := cb.ChordPartReturn(ctx, part)
	if err != nil {
		w.log.Error("recording a chord part failed", logTaskID, j.t.ID, "group", j.t.GroupID, "error", err)
		return
	}
	if !join.Ready {
		return
	}
	body := j.t.Chord.Clone()
	bodyID := body.Option("task_id")
	if join.Err != nil {
		w.failChordBody(ctx, j, body, join.Err)
		return
	}
	if _, err := w.producer.ApplySignature(ctx, body, broker.ApplyOptions{
		PrependArgs: []any{join.Results}, ParentID: j.t.ID, RootID: j.t.RootID,
	}); err != nil {
		w.log.Error("sending the chord body failed", logTaskID, j.t.ID, "group", j.t.GroupID, "body", bodyID, "error", err)
		return
	}
	if err := cb.ChordCleanup(ctx, j.t.GroupID); err != nil {
		w.log.Warn("cleaning up a chord's keys failed; they expire by themselves", "group", j.t.GroupID, "error", err)
	}
}

// failChordBody stores the body's FAILURE (ChordError) and sends the
// body's error callbacks, as Celery's chord_error_from_stack does.
func (w *Worker) failChordBody(ctx context.Context, j *job, body *broker.Signature, cerr *broker.ChordError) {
	bodyID := body.Option("task_id")
	if w.cfg.Backend != nil && bodyID != "" {
		now := w.now()
		tb := "Traceback (most recent call last):\n  celeriac chord " + j.t.GroupID + "\ncelery.exceptions.ChordError: " + cerr.Message + "\n"
		meta := &broker.ResultMeta{TaskID: bodyID, Status: broker.StateFailure, Result: cerr.Exception().ToMap(),
			Traceback: &tb, Children: []any{}, DateDone: &now, ReplyTo: body.Option("reply_to"), CorrelationID: bodyID}
		if err := w.cfg.Backend.Store(ctx, meta); err != nil {
			w.log.Error("storing the failed chord body failed", "body", bodyID, "error", err)
		}
	}
	errbacks, _ := broker.SignaturesFrom(body.Options["link_error"])
	for i := range errbacks {
		if _, err := w.producer.ApplySignature(ctx, &errbacks[i], broker.ApplyOptions{
			PrependArgs: []any{bodyID}, ParentID: bodyID, RootID: j.t.RootID,
		}); err != nil {
			w.log.Error("sending a chord errback failed", "body", bodyID, "errback", errbacks[i].Task, "error", err)
		}
	}
	w.log.Warn("chord failed", "group", j.t.GroupID, "body", bodyID, "reason", cerr.Message)
}
