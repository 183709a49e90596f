package worker

import (
	"github.com/celeriac/celeriac/broker"
)

// admit decides whether a decoded task may proceed: its name must be
// registered and it must not have expired. Refused tasks are settled here.
func (w *Worker) admit(j *job) bool {
	j.reg = w.lookup(j.t.Name)
	if j.reg == nil {
		// Celery: reject without requeue and record NotRegistered, so a
		// caller waiting on the result learns why instead of hanging.
		w.storeState(j, broker.StateFailure, broker.ExcNotRegistered(j.t.Name).ToMap(), nil, true)
		w.reject(j, false, "task not registered: "+j.t.Name)
		return false
	}
	return w.checkRevoked(j) && w.checkExpired(j)
}

// admitBeforeRun repeats the time-dependent checks just before execution:
// a task can expire while it waits for its ETA or a free slot.
func (w *Worker) admitBeforeRun(j *job) bool {
	return w.checkRevoked(j) && w.checkExpired(j)
}

func (w *Worker) checkExpired(j *job) bool {
	if j.t.Expires == nil || w.now().Before(*j.t.Expires) {
		return true
	}
	w.revoke(j, "expired", true)
	return false
}

// revoke records REVOKED with Celery's reason and acks the message.
func (w *Worker) revoke(j *job, reason string, expired bool) {
	w.storeState(j, broker.StateRevoked, broker.ExcRevoked(reason).ToMap(), nil, false)
	w.obs.revoked(j, reason, expired)
	w.ack(j)
}
