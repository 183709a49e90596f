package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus series. Names follow
// celery-exporter's (celery_task_*_total, celery_task_runtime) so existing
// dashboards and alerts work; celeriac-only series are prefixed celeriac_.
type metrics struct {
	received, started, succeeded, retried, revoked, rejected *prometheus.CounterVec
	failed                                                   *prometheus.CounterVec
	runtime                                                  *prometheus.HistogramVec
	etaLateness                                              prometheus.Histogram
	parked                                                   prometheus.CounterFunc
	guard                                                    *prometheus.CounterVec
}

func newMetrics(w *Worker, reg prometheus.Registerer) *metrics {
	labels := prometheus.Labels{"hostname": w.hostname}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, append([]string{"name"}, extra...))
	}
	m := &metrics{
		received:  counter("celery_task_received_total", "Tasks received from the broker."),
		started:   counter("celery_task_started_total", "Tasks started."),
		succeeded: counter("celery_task_succeeded_total", "Tasks that succeeded."),
		failed:    counter("celery_task_failed_total", "Tasks that failed.", "exception"),
		retried:   counter("celery_task_retried_total", "Tasks scheduled for retry."),
		revoked:   counter("celery_task_revoked_total", "Tasks revoked or expired."),
		rejected:  counter("celery_task_rejected_total", "Messages rejected (malformed, unknown task, Reject)."),
		runtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "celery_task_runtime", Help: "Task run time in seconds.", ConstLabels: labels,
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"name"}),
		// No task label: lateness is the worker's property, not the task's.
		etaLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "celeriac_eta_lateness_seconds", ConstLabels: labels,
			Help:    "How long after its ETA (or countdown) a task started.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		guard: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "celeriac_guard_total", ConstLabels: labels,
			Help: "Exactly-once guard outcomes: run, duplicate (terminal state found), busy (lease held elsewhere), lost (lease lost while running), error."},
			[]string{"outcome"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	m.parked = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "celeriac_eta_parked_total", ConstLabels: labels,
		Help: "ETA tasks parked in the broker instead of held in memory."}, func() float64 { return float64(w.parked.Load()) })
	reg.MustRegister(m.received, m.started, m.succeeded, m.failed, m.retried, m.revoked, m.rejected, m.runtime, m.etaLateness, m.guard, m.parked,
		gauge("celery_worker_up", "1 while the worker is consuming.", func() float64 {
			if w.consuming() {
				return 1
			}
			return 0
		}),
		gauge("celery_worker_tasks_active", "Tasks running now.", func() float64 { return float64(w.activeCount()) }),
		gauge("celeriac_tasks_reserved", "Tasks received and waiting for a slot.", func() float64 { return float64(w.runq.len()) }),
		gauge("celeriac_tasks_throttled", "Tasks waiting for a rate-limit token.", func() float64 { return float64(w.rates.throttled()) }),
		gauge("celeriac_eta_held", "ETA tasks held in memory until due.", func() float64 { return float64(w.eta.len()) }),
		gauge("celeriac_prefetch_count", "Current prefetch (QoS) limit.", func() float64 { return float64(w.pf.applied.Load()) }),
		gauge("celeriac_unacked_messages", "Messages received and not yet acknowledged.", func() float64 { return float64(w.inflight.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "celeriac_events_dropped_total", ConstLabels: labels,
			Help: "Task events dropped because the broker could not keep up."}, func() float64 { return float64(w.events.dropped.Load()) }),
	)
	return m
}

// taskLabel keeps label cardinality bounded: names of unregistered tasks
// come from the wire and could be anything.
func taskLabel(j *job) string {
	if j.reg == nil {
		return "unregistered"
	}
	return j.reg.name
}

// metricsObserver counts task steps.
type metricsObserver struct{ m *metrics }

func (o metricsObserver) received(j *job) { o.m.received.WithLabelValues(taskLabel(j)).Inc() }
func (o metricsObserver) started(j *job) {
	o.m.started.WithLabelValues(taskLabel(j)).Inc()
	if j.t.ETA != nil {
		o.m.etaLateness.Observe(max(0, j.started.Sub(*j.t.ETA).Seconds()))
	}
}
func (o metricsObserver) succeeded(j *job, out *outcome) {
	o.m.succeeded.WithLabelValues(taskLabel(j)).Inc()
	o.m.runtime.WithLabelValues(taskLabel(j)).Observe(out.runtime.Seconds())
}
func (o metricsObserver) failed(j *job, out *outcome) {
	o.m.failed.WithLabelValues(taskLabel(j), out.exc.Type).Inc()
	o.m.runtime.WithLabelValues(taskLabel(j)).Observe(out.runtime.Seconds())
}
func (o metricsObserver) retried(j *job, out *outcome) {
	o.m.retried.WithLabelValues(taskLabel(j)).Inc()
}
func (o metricsObserver) revoked(j *job, reason string, expired bool) {
	o.m.revoked.WithLabelValues(taskLabel(j)).Inc()
}
func (o metricsObserver) rejected(j *job, reason string) {
	o.m.rejected.WithLabelValues(taskLabel(j)).Inc()
}
func (o metricsObserver) ignored(j *job) {}
