package worker

import (
	"github.com/celeriac/celeriac/broker"
)

func (w *Worker) trackStarted(j *job) bool {
	if j.reg.trackStarted != nil {
		return *j.reg.trackStarted
	}
	return w.cfg.TrackStarted
}

func (w *Worker) ignoresResult(j *job) bool {
	return j.t.IgnoreResult || (j.reg != nil && j.reg.ignoreResult)
}

// storeState writes a state document for j's task when results are kept
// for it. isError marks exception states, which an ignored-result task
// stores only with StoreErrorsEvenIfIgnored.
func (w *Worker) storeState(j *job, st broker.State, result any, tb *string, isError bool) {
	if w.cfg.Backend == nil || j.t == nil || j.t.ID == "" {
		return
	}
	if w.ignoresResult(j) && (!isError || !w.cfg.StoreErrorsEvenIfIgnored) {
		return
	}
	w.storeMeta(j, st, result, tb, nil)
}

// storeMeta writes one state document.
func (w *Worker) storeMeta(j *job, st broker.State, result any, tb *string, children []any) {
	if children == nil {
		children = []any{}
	}
	meta := &broker.ResultMeta{
		TaskID:        j.t.ID,
		Status:        st,
		Result:        result,
		Traceback:     tb,
		Children:      children,
		GroupID:       j.t.GroupID,
		ParentID:      j.t.ParentID,
		ReplyTo:       j.t.ReplyTo,
		CorrelationID: j.t.CorrelationID,
	}
	if meta.CorrelationID == "" {
		meta.CorrelationID = j.t.ID
	}
	if st.Ready() {
		now := w.now()
		meta.DateDone = &now
	}
	if w.cfg.ResultExtended {
		retries := j.t.Retries
		meta.Name, meta.Args, meta.Kwargs = j.t.Name, j.t.Args, j.t.Kwargs
		meta.Worker, meta.Retries, meta.Queue = w.hostname, &retries, j.d.RoutingKey
	}
	ctx, cancel := settleCtx()
	defer cancel()
	if st.Ready() && w.storeReleasing(ctx, j, meta) {
		return
	}
	if err := w.cfg.Backend.Store(ctx, meta); err != nil {
		w.log.Error("storing task state failed", "task_id", j.t.ID, "task", j.name(), "state", string(st), "error", err)
	}
}

// complete stores the outcome and sends what follows it, in Celery's
// order, then settles the message:
//
//	SUCCESS  callbacks and the next chain link are sent first (so the
//	         stored children list them), then SUCCESS, then chord accounting
//	FAILURE  FAILURE is stored, then errbacks and chord accounting
//	RETRY    the next attempt is published, then RETRY is stored
func (w *Worker) complete(j *job, out *outcome) {
	if w.leaseLost(j) {
		// Another worker may hold the task now: record nothing, and let
		// the broker deliver it again (the guard then decides).
		w.metrics.guard.WithLabelValues("lost").Inc()
		w.reject(j, true, "exactly-once lease lost while running: "+j.lease.Err().Error())
		return
	}
	switch {
	case out.ignore:
		w.guardExit(j, string(broker.StateIgnored))
		w.ack(j)
		w.obs.ignored(j)
		return
	case out.state == "":
		if out.requeue {
			w.guardExit(j, "")
		} else {
			w.guardExit(j, string(broker.StateRejected))
		}
		w.reject(j, out.requeue, "task raised Reject: "+out.err.Error())
		return
	}
	switch out.state {
	case broker.StateSuccess:
		children := w.sendCallbacks(j, out.value)
		w.storeSuccess(j, out.value, children)
		w.chordPartDone(j, out)
		w.obs.succeeded(j, out)
	case broker.StateFailure:
		tb := out.traceback
		w.storeState(j, broker.StateFailure, out.exc.ToMap(), &tb, true)
		w.sendErrbacks(j, out)
		w.chordPartDone(j, out)
		w.obs.failed(j, out)
	case broker.StateRevoked:
		w.storeState(j, broker.StateRevoked, out.exc.ToMap(), nil, true)
		w.chordPartDone(j, out)
		w.obs.revoked(j, "terminated", false)
	case broker.StateRetry:
		if err := w.retry(j, out); err != nil {
			// The task must not be lost: leave it to the broker.
			w.guardExit(j, "")
			w.reject(j, true, "publishing the retry failed: "+err.Error())
			return
		}
		var result any
		var tb *string
		if out.exc != nil {
			result = out.exc.ToMap()
			s := "Retry in celeriac task: " + out.err.Error()
			tb = &s
		}
		w.storeState(j, broker.StateRetry, result, tb, true)
		w.obs.retried(j, out)
	}
	if out.state.Ready() {
		w.guardExit(j, string(out.state))
	} else {
		w.guardExit(j, "")
	}
	w.processed.Add(1)
	w.ack(j)
}

func (w *Worker) storeSuccess(j *job, value any, children []any) {
	if w.cfg.Backend == nil || w.ignoresResult(j) {
		return
	}
	w.storeMeta(j, broker.StateSuccess, value, nil, children)
}
