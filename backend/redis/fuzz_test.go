package redis

import (
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// FuzzDecode feeds arbitrary stored values to every reader of Redis data:
// task documents, saved groups and chord members. None may panic, and a
// document that decodes must survive re-encoding.
func FuzzDecode(f *testing.F) {
	jb := &Backend{serializer: "json"}
	mb := &Backend{serializer: "msgpack"}
	meta := &broker.ResultMeta{TaskID: "t", Status: broker.StateFailure, Children: []any{ResultNode{ID: "c"}.Tuple()},
		Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"x", int64(1)}, Module: "builtins"}}
	for _, b := range []*Backend{jb, mb} {
		doc, _ := b.encode(metaDoc(meta, time.Unix(1, 0)))
		f.Add(doc)
		grp, _ := b.encode(ordered{keys: []string{"result"}, vals: []any{ResultNode{ID: "g", Group: true, Children: []ResultNode{{ID: "a"}}}.Tuple()}})
		f.Add(grp)
		member, _ := b.encode([]any{1, "t", "SUCCESS", int64(5)})
		f.Add(member)
	}
	f.Add([]byte(`{"status": "SUCCESS", "result": {"__type__": "bytes", "__value__": "x"}}`))
	f.Add([]byte(`{"result": [["g", ["p", null]], [[["a", null], null]]]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := decodeMeta("t", raw); err == nil {
			if _, err := jb.encode(metaDoc(m, time.Unix(1, 0))); err != nil {
				t.Fatalf("decoded meta does not re-encode: %v", err)
			}
		}
		_, _ = parseGroupDoc("g", raw)
		_, _ = statusOf(raw)
		if v, _, err := decodeValue(raw); err == nil {
			_, _ = ParseResultTuple(v)
		}
	})
}
