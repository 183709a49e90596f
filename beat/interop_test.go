package beat

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/clock"
	"github.com/celeriac/celeriac/internal/testenv"
)

// TestCeleryAcceptsBeatMessages hands beat's messages, exactly as the
// broker delivers them, to Debian's Celery worker code (kombu's Message and
// celery.worker.request.Request) and runs the tasks there. The AMQP and
// Redis transports are not part of this package's build; this checks the
// messages themselves, which every transport carries unchanged.
func TestCeleryAcceptsBeatMessages(t *testing.T) {
	py := testenv.Python(t, "celery")
	h := newHarness(t)
	h.clk = clock.NewFake(time.Now().Truncate(time.Second))
	prio := uint8(7)
	h.start(h.config(
		Entry{Name: "add", Task: "tasks.add", Args: []any{16, 16}, Schedule: every(t, time.Minute),
			Options: Options{Priority: &prio, Expires: time.Hour}},
		Entry{Name: "echo-msgpack", Task: "tasks.echo", Args: []any{"a", 1.5}, Kwargs: map[string]any{"k": []any{1, "two"}},
			Schedule: every(t, time.Minute), Options: Options{Serializer: "msgpack", Headers: map[string]any{"x-src": "beat"}}},
	))
	h.advance(time.Minute, 2)

	c, err := h.srv.Connect().Consume(context.Background(), broker.ConsumeOptions{Queues: []broker.Queue{broker.TaskQueue(h.queue)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(context.Background())
	var in bytes.Buffer
	for range 2 {
		d := <-c.Deliveries()
		m := d.Message
		props := map[string]any{"correlation_id": m.Properties.CorrelationID, "reply_to": m.Properties.ReplyTo,
			"delivery_mode": m.Properties.DeliveryMode, "priority": m.Properties.Priority}
		line, err := json.Marshal(map[string]any{
			"body": base64.StdEncoding.EncodeToString(m.Body), "content_type": m.ContentType, "content_encoding": m.ContentEncoding,
			"headers": m.Headers, "properties": props, "exchange": d.Exchange, "routing_key": d.RoutingKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(line, '\n'))
	}
	cmd := exec.Command(py, "testdata/celery_decode.py")
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("celery: %v\n%s", err, stderr.String())
	}
	got := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got[r["name"].(string)] = r
	}
	add, echo := got["tasks.add"], got["tasks.echo"]
	if add == nil || echo == nil {
		t.Fatalf("celery ran %v", got)
	}
	if add["result"] != 32.0 || add["acked"] != true || add["priority"] != 7.0 || add["expires"] == nil {
		t.Errorf("tasks.add in Celery: %v", add)
	}
	res, _ := echo["result"].(map[string]any)
	if res == nil || len(res["args"].([]any)) != 2 || res["kwargs"].(map[string]any)["k"] == nil {
		t.Errorf("tasks.echo (msgpack) in Celery: %v", echo)
	}
}
