package redis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/celeriac/celeriac/broker"
)

// metaOrder is the order in which Celery 5.2.6 builds the result document
// (_get_result_meta, then the result_extended fields, then task_id), which
// Python's json.dumps and msgpack.packb keep.
var metaOrder = []string{
	"status", "result", "traceback", "children", "date_done",
	"group_id", "parent_id",
	"name", "args", "kwargs", "worker", "retries", "queue",
	"task_id",
}

// ordered is a mapping that serializes its keys in a fixed order, as a
// Python dict does. broker.MarshalJSON sorts map keys; this type keeps
// Celery's order so stored documents match Python's byte for byte.
type ordered struct {
	keys []string
	vals []any
}

func (o *ordered) add(k string, v any) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// MarshalJSON writes {"k": v, …} with Python's separators.
func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteString(", ")
		}
		kb, err := broker.MarshalJSON(k)
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteString(": ")
		vb, err := broker.MarshalJSON(o.vals[i])
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// EncodeMsgpack writes a map in the same order.
func (o ordered) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeMapLen(len(o.keys)); err != nil {
		return err
	}
	for i, k := range o.keys {
		if err := e.EncodeString(k); err != nil {
			return err
		}
		if err := e.Encode(o.vals[i]); err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
	}
	return nil
}

var (
	_ json.Marshaler        = ordered{}
	_ msgpack.CustomEncoder = ordered{}
)

// orderResult puts the dicts Celery builds itself into Celery's key order:
// an exception ({exc_type, exc_message, exc_module}) and the STARTED info
// ({pid, hostname}). Other values are the task's own and keep the sorted
// order broker.MarshalJSON gives them.
func orderResult(v any) any {
	switch x := v.(type) {
	case *broker.ExceptionInfo:
		if x == nil {
			return nil
		}
		return orderException(x.ToMap())
	case broker.ExceptionInfo:
		return orderException(x.ToMap())
	case map[string]any:
		if len(x) == 3 {
			if _, ok := x["exc_type"]; ok {
				if _, ok := x["exc_message"]; ok {
					if _, ok := x["exc_module"]; ok {
						return orderException(x)
					}
				}
			}
		}
		if len(x) == 2 {
			if _, ok := x["pid"]; ok {
				if _, ok := x["hostname"]; ok {
					return ordered{keys: []string{"pid", "hostname"}, vals: []any{x["pid"], x["hostname"]}}
				}
			}
		}
	}
	return v
}

func orderException(m map[string]any) ordered {
	return ordered{
		keys: []string{"exc_type", "exc_message", "exc_module"},
		vals: []any{m["exc_type"], m["exc_message"], m["exc_module"]},
	}
}

// metaDoc builds the document for meta in Celery's field order. A ready
// state without DateDone gets now, as Celery stamps date_done when it
// writes a ready state.
func metaDoc(meta *broker.ResultMeta, now time.Time) ordered {
	m := *meta
	if m.Status.Ready() && m.DateDone == nil {
		m.DateDone = &now
	}
	fields := m.ToMap()
	fields["result"] = orderResult(fields["result"])
	var doc ordered
	for _, k := range metaOrder {
		if v, ok := fields[k]; ok {
			doc.add(k, v)
		}
	}
	return doc
}

// encode serializes v with the backend's serializer. JSON output is made
// ASCII-only like Python's json.dumps (ensure_ascii), so a Go-written
// document is byte-identical to the one a Python worker writes.
func (b *Backend) encode(v any) ([]byte, error) {
	if b.serializer == broker.SerializerMsgpack {
		v = sortedMaps(v, 0)
	}
	body, _, _, err := broker.Marshal(b.serializer, v)
	if err != nil {
		return nil, fmt.Errorf("redis: encode: %w", err)
	}
	if b.serializer == broker.SerializerJSON {
		body = asciiJSON(body)
	}
	return body, nil
}

// sortedMaps gives maps a fixed key order for msgpack (broker's msgpack
// encoder writes Go maps in random order): the same value always encodes to
// the same bytes, as with JSON — which matters for chord members, where a
// redelivered part must produce the member it produced before.
func sortedMaps(v any, depth int) any {
	if depth > 100 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		o := ordered{keys: keys, vals: make([]any, len(keys))}
		for i, k := range keys {
			o.vals[i] = sortedMaps(x[k], depth+1)
		}
		return o
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sortedMaps(e, depth+1)
		}
		return out
	case ordered:
		out := ordered{keys: x.keys, vals: make([]any, len(x.vals))}
		for i, e := range x.vals {
			out.vals[i] = sortedMaps(e, depth+1)
		}
		return out
	}
	return v
}

// asciiJSON replaces every non-ASCII character of a JSON text with its
// \uXXXX escape (a surrogate pair above U+FFFF). Non-ASCII bytes can only
// occur inside JSON strings, so the text keeps its meaning.
func asciiJSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			out = appendU(appendU(out, r1), r2)
		} else {
			out = appendU(out, r)
		}
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}

// sniff tells the serializer of a stored value. Celery's documents are
// mappings or lists: JSON text starts with '{' or '[' (after optional
// space); msgpack starts with a map or array header byte. Sniffing lets a
// backend configured for one serializer read values another client wrote
// with the other.
func sniff(raw []byte) string {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[', '"':
			return broker.ContentJSON
		}
		if c >= '0' && c <= '9' || c == '-' || c == 't' || c == 'f' || c == 'n' {
			return broker.ContentJSON
		}
		return broker.ContentMsgpack
	}
	return broker.ContentJSON
}

// decodeValue decodes a stored value into celeriac's value model.
func decodeValue(raw []byte) (any, string, error) {
	ct := sniff(raw)
	v, err := broker.Unmarshal(ct, raw)
	return v, ct, err
}

// decodeMeta decodes a stored task document.
func decodeMeta(taskID string, raw []byte) (*broker.ResultMeta, error) {
	v, ct, err := decodeValue(raw)
	if err != nil {
		return nil, fmt.Errorf("redis: result of task %s: %w", taskID, err)
	}
	m, err := broker.MetaFromMap(v)
	if err != nil {
		return nil, fmt.Errorf("redis: result of task %s: %w", taskID, err)
	}
	if m.TaskID == "" {
		m.TaskID = taskID
	}
	m.ContentType = ct
	return m, nil
}
