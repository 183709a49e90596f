package worker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/celeriac/celeriac/worker"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	h := e.w.HTTPHandler()
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before Start: %d", code)
	}
	e.start()
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || !strings.Contains(body, "test@host") {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("readyz: %d %s", code, body)
	}
	e.wait(e.send("celeriac.add", []any{1, 2}, nil))
	e.wait(e.send("celeriac.fail", []any{"x"}, nil))
	e.wait(e.send("tasks.unknown", nil, nil))
	_, body := get(t, h, "/metrics")
	for _, want := range []string{
		`celery_task_succeeded_total{hostname="test@host",name="celeriac.add"} 1`,
		`celery_task_failed_total{exception="TaskError",hostname="test@host",name="celeriac.fail"} 1`,
		`celery_task_rejected_total{hostname="test@host",name="unregistered"} 1`,
		`celery_task_runtime_count{hostname="test@host",name="celeriac.add"} 1`,
		`celery_worker_up{hostname="test@host"} 1`,
		`celeriac_eta_held{hostname="test@host"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := e.w.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz after Shutdown: %d", code)
	}
}

func TestConnectionHooksCount(t *testing.T) {
	reg := worker.NewRegistry()
	hooks := worker.ConnectionHooks(reg)
	e := newEnv(t, func(c *worker.Config) { c.Registry = reg })
	hooks.OnDisconnect(errors.New("connection reset"))
	hooks.OnReconnect("amqp://h//")
	hooks.OnReconnect("amqp://h//")
	_, body := get(t, e.w.HTTPHandler(), "/metrics")
	for _, want := range []string{"celeriac_broker_disconnects_total 1", "celeriac_broker_reconnects_total 2"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
