package signing

import "github.com/celeriac/celeriac/sessions/pyjson"

// Serializer turns a session-like object into bytes and back, as Django's
// SESSION_SERIALIZER classes do.
type Serializer interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte) (any, error)
}

// JSON is django.core.signing.JSONSerializer: compact JSON with every
// non-ASCII character escaped (Django decodes the bytes as latin-1, so raw
// UTF-8 would come back garbled), read back as latin-1.
type JSON struct{}

// Marshal writes v as Python's json.dumps(v, separators=(",", ":")).
func (JSON) Marshal(v any) ([]byte, error) { return pyjson.Marshal(v, pyjson.Compact) }

// Unmarshal reads data decoded as latin-1, as Django does.
func (JSON) Unmarshal(data []byte) (any, error) { return pyjson.Unmarshal(latin1(data)) }
