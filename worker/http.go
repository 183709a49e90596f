package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPHandler serves the worker's operational endpoints:
//
//	/metrics  Prometheus metrics
//	/healthz  200 while the process runs (liveness)
//	/readyz   200 while the worker consumes and its broker and result
//	          backend answer (readiness); 503 with the reason otherwise
func (w *Worker) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]any{"status": "ok", "hostname": w.hostname})
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := w.Ready(ctx); err != nil {
			writeJSON(rw, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "hostname": w.hostname, "error": err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]any{"status": "ready", "hostname": w.hostname})
	})
	return mux
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// errNotConsuming is Ready's error before Start and after Shutdown.
var errNotConsuming = &readyError{"worker is not consuming"}

type readyError struct{ msg string }

func (e *readyError) Error() string { return e.msg }

// Ready reports whether the worker is consuming and its broker and result
// backend answer a ping (when they support one).
func (w *Worker) Ready(ctx context.Context) error {
	if !w.consuming() {
		return errNotConsuming
	}
	if p, ok := w.cfg.Broker.(broker.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return &readyError{"broker: " + err.Error()}
		}
	}
	if p, ok := w.cfg.Backend.(broker.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return &readyError{"result backend: " + err.Error()}
		}
	}
	return nil
}

func (w *Worker) consuming() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == stateRunning && w.consumer != nil
}

// defaultRegistry is a fresh registry with Go runtime and process metrics.
func defaultRegistry() *prometheus.Registry { return NewRegistry() }

// NewRegistry returns a Prometheus registry with Go runtime and process
// metrics, for Config.Registry when the caller adds series of its own
// (such as ConnectionHooks').
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// ConnectionHooks counts the broker connection's events into reg as
// celeriac_broker_reconnects_total and celeriac_broker_disconnects_total.
// Pass the hooks in broker.Options when opening the worker's broker, and
// reg as Config.Registry, so the counts appear on /metrics.
func ConnectionHooks(reg prometheus.Registerer) broker.Hooks {
	reconnects := prometheus.NewCounter(prometheus.CounterOpts{Name: "celeriac_broker_reconnects_total",
		Help: "Broker connections re-established after a loss."})
	disconnects := prometheus.NewCounter(prometheus.CounterOpts{Name: "celeriac_broker_disconnects_total",
		Help: "Broker connections lost."})
	reg.MustRegister(reconnects, disconnects)
	return broker.Hooks{
		OnReconnect:  func(string) { reconnects.Inc() },
		OnDisconnect: func(error) { disconnects.Inc() },
	}
}
