package redis

import (
	"os"
	"testing"
)

// FuzzDecodeEnvelope: no input panics; whatever decodes survives the
// restore marking and decodes again with the same delivery tag.
func FuzzDecodeEnvelope(f *testing.F) {
	if raw, err := os.ReadFile("testdata/kombu-envelope.json"); err == nil {
		f.Add(raw)
	}
	f.Add([]byte(`{"body":"","properties":{"delivery_tag":"t","delivery_info":{"exchange":"","routing_key":"q"}}}`))
	f.Add([]byte(`{"body":"eA==","headers":null,"properties":{"body_encoding":"base64","delivery_tag":"t","priority":null,"delivery_mode":"2"}}`))
	f.Add([]byte(`{"body":{"a":1},"properties":{"delivery_tag":1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := decodeEnvelope(raw)
		if err != nil {
			return
		}
		re, err := markRedelivered(raw)
		if err != nil {
			t.Fatalf("markRedelivered failed on a decodable envelope: %v", err)
		}
		d2, err := decodeEnvelope(re)
		if err != nil {
			t.Fatalf("restored envelope no longer decodes: %v\n%s", err, re)
		}
		if d2.tag != d.tag || string(d2.msg.Body) != string(d.msg.Body) {
			t.Fatalf("restore changed tag or body")
		}
	})
}
