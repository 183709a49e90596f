package redis

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/celeriac/celeriac/broker"
)

// testdata/kombu-envelope.json is what Celery 5.2.6 / kombu 5.2 pushed for
// send_task('tasks.add', (2, 3), {'z': 'é<&>'}, countdown=10, expires=60,
// priority=5).
func TestDecodeKombuEnvelope(t *testing.T) {
	raw, err := os.ReadFile("testdata/kombu-envelope.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.tag != "fb016cb4-37fc-46fd-8d7c-60d4effd7a37" || d.exchange != "" || d.routingKey != "t_fixture_capture" || d.redelivered {
		t.Errorf("delivery info: %+v", d)
	}
	p := d.msg.Properties
	want := broker.Properties{CorrelationID: "2878c34e-b41c-45f5-9a37-801659183d7c", ReplyTo: "cc270149-43f4-34d3-95af-5d916530a787",
		DeliveryMode: 2, Priority: 5, Expiration: "60000"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("properties: %s", diff)
	}
	task, err := broker.DecodeTask(d.msg)
	if err != nil {
		t.Fatal(err)
	}
	if task.Name != "tasks.add" || len(task.Args) != 2 || task.Kwargs["z"] != "é<&>" {
		t.Errorf("task %+v", task)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	m := &broker.Message{Body: []byte{0, 0xff, '"'}, ContentType: broker.ContentMsgpack, ContentEncoding: "binary",
		Headers:    map[string]any{"id": "x", "n": int64(1) << 50, "f": 2.0, "s": "é<&>", "l": []any{nil, true}},
		Properties: broker.Properties{CorrelationID: "c", ReplyTo: "r", DeliveryMode: 2, Priority: 9, Expiration: "5"}}
	raw, tag, err := encodeEnvelope(m, "ex", "rk")
	if err != nil {
		t.Fatal(err)
	}
	// The shape Python reads: hyphenated top-level keys, base64 body.
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	props := top["properties"].(map[string]any)
	if props["body_encoding"] != "base64" || props["delivery_tag"] != tag || top["content-type"] != broker.ContentMsgpack {
		t.Errorf("envelope %s", raw)
	}
	info := props["delivery_info"].(map[string]any)
	if info["exchange"] != "ex" || info["routing_key"] != "rk" {
		t.Errorf("delivery_info %v", info)
	}
	d, err := decodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, d.msg); diff != "" {
		t.Errorf("round trip (-sent +got):\n%s", diff)
	}
	re, err := markRedelivered(raw)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := decodeEnvelope(re)
	if err != nil || !d2.redelivered || d2.msg.Header("redelivered") != true || d2.tag != tag {
		t.Fatalf("redelivered: %+v %v", d2, err)
	}
	delete(d2.msg.Headers, "redelivered")
	if diff := cmp.Diff(m, d2.msg); diff != "" {
		t.Errorf("restore changed the message (-sent +got):\n%s", diff)
	}
}

func TestDecodeBad(t *testing.T) {
	for _, tc := range []struct{ name, raw string }{
		{"not json", `{`},
		{"array", `[1]`},
		{"no tag", `{"body":"","properties":{"delivery_info":{}}}`},
		{"bad base64", `{"body":"!!","properties":{"body_encoding":"base64","delivery_tag":"t","delivery_info":{}}}`},
		{"headers list", `{"body":"","headers":[1],"properties":{"delivery_tag":"t","delivery_info":{}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeEnvelope([]byte(tc.raw)); !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("err %v, want ErrBadEnvelope", err)
			}
		})
	}
}

func TestRouting(t *testing.T) {
	for _, tc := range []struct {
		pri  int
		want string
	}{{0, "q"}, {2, "q"}, {3, "q\x06\x163"}, {5, "q\x06\x163"}, {8, "q\x06\x166"}, {9, "q\x06\x169"}, {200, "q\x06\x169"}} {
		if got := queueKey("q", tc.pri); got != tc.want {
			t.Errorf("queueKey(q, %d) = %q, want %q", tc.pri, got, tc.want)
		}
		if got := queueOfKey(tc.want); got != "q" {
			t.Errorf("queueOfKey(%q) = %q", tc.want, got)
		}
	}
	for _, tc := range []struct {
		key, rk string
		match   bool
	}{
		{"task.#", "task.succeeded", true}, {"task.#", "worker.heartbeat", false},
		{"*.x", "a.x", true}, {"*.x", "a.b.x", true /* kombu's '*' regex is greedy across dots */},
		{"a-b.c", "a-b.c", true}, {"a-b.c", "a-bxc", false},
	} {
		if got := matchPattern(topicPattern(tc.key), tc.rk); got != tc.match {
			t.Errorf("%q ~ %q = %v (pattern %s)", tc.key, tc.rk, got, topicPattern(tc.key))
		}
	}
	if p := topicPattern("task.#"); p != `^task\..*?$` {
		t.Errorf("topicPattern = %s", p)
	}
}
