package broker

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidMessage is wrapped by InvalidMessageError.
var ErrInvalidMessage = errors.New("broker: invalid task message")

// InvalidMessageError says why a message is not a task celeriac can run.
// The worker rejects such messages without requeue and logs the reason.
type InvalidMessageError struct {
	Reason string
	Err    error
}

func (e *InvalidMessageError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("broker: invalid task message: %s: %v", e.Reason, e.Err)
	}
	return "broker: invalid task message: " + e.Reason
}

func (e *InvalidMessageError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidMessage, e.Err}
	}
	return []error{ErrInvalidMessage}
}

func invalid(reason string, err error) error { return &InvalidMessageError{Reason: reason, Err: err} }

// headers celeriac interprets; everything else is kept in Task.Headers.
var knownHeaders = map[string]bool{
	"lang": true, "task": true, "id": true, "shadow": true, "eta": true, "expires": true,
	"group": true, "group_index": true, "retries": true, "timelimit": true, "root_id": true,
	"parent_id": true, "argsrepr": true, "kwargsrepr": true, "origin": true,
	"ignore_result": true, "compression": true,
}

// DecodeTask decodes a Celery task message of protocol 2 (task name in the
// headers) or protocol 1 (everything in the body). It never panics on bad
// input: every problem is an *InvalidMessageError, a *ContentError (pickle,
// yaml, unknown content type) or a *DecodeError.
func DecodeTask(m *Message) (*Task, error) {
	if m == nil {
		return nil, invalid("nil message", nil)
	}
	body := m.Body
	if c, ok := m.Header("compression").(string); ok && c != "" {
		var err error
		if body, err = Decompress(c, body); err != nil {
			return nil, invalid("cannot decompress body", err)
		}
	}
	v, err := Unmarshal(m.ContentType, body)
	if err != nil {
		return nil, err
	}
	var t *Task
	if name, ok := m.Header("task").(string); ok {
		t, err = decodeV2(m, name, v)
	} else if m.Header("task") != nil {
		return nil, invalid(fmt.Sprintf("task header is %T, not a string", m.Header("task")), nil)
	} else {
		t, err = decodeV1(m, v)
	}
	if err != nil {
		return nil, err
	}
	t.ReplyTo = m.Properties.ReplyTo
	t.CorrelationID = m.Properties.CorrelationID
	t.Priority = m.Properties.Priority
	t.ContentType = normContentType(m.ContentType)
	return t, nil
}

func decodeV2(m *Message, name string, v any) (*Task, error) {
	if name == "" {
		return nil, invalid("empty task name", nil)
	}
	id, _ := m.Header("id").(string)
	if id == "" {
		return nil, invalid("missing id header", nil)
	}
	t := &Task{ID: id, Name: name, Protocol: 2}
	parts, ok := v.([]any)
	if !ok || len(parts) < 2 || len(parts) > 3 {
		return nil, invalid(fmt.Sprintf("protocol 2 body must be [args, kwargs, embed], got %s", describe(v)), nil)
	}
	if t.Args, ok = parts[0].([]any); !ok {
		return nil, invalid(fmt.Sprintf("args must be an array, got %s", describe(parts[0])), nil)
	}
	if t.Kwargs, ok = parts[1].(map[string]any); !ok {
		return nil, invalid(fmt.Sprintf("kwargs must be a mapping, got %s", describe(parts[1])), nil)
	}
	if len(parts) == 3 && parts[2] != nil {
		embed, ok := parts[2].(map[string]any)
		if !ok {
			return nil, invalid(fmt.Sprintf("embed must be a mapping, got %s", describe(parts[2])), nil)
		}
		if err := t.decodeEmbed(embed); err != nil {
			return nil, err
		}
	}
	if err := t.decodeHeaders(m.Headers); err != nil {
		return nil, err
	}
	if t.RootID == "" {
		t.RootID = t.ID
	}
	t.Headers = extraHeaders(m.Headers)
	return t, nil
}

func (t *Task) decodeEmbed(embed map[string]any) error {
	var ok bool
	if t.Callbacks, ok = signaturesFrom(embed["callbacks"]); !ok {
		return invalid("embed.callbacks is not a list of signatures", nil)
	}
	if t.Errbacks, ok = signaturesFrom(embed["errbacks"]); !ok {
		return invalid("embed.errbacks is not a list of signatures", nil)
	}
	if t.Chain, ok = signaturesFrom(embed["chain"]); !ok {
		return invalid("embed.chain is not a list of signatures", nil)
	}
	if c := embed["chord"]; c != nil {
		s, ok := signatureFrom(c)
		if !ok {
			return invalid("embed.chord is not a signature", nil)
		}
		t.Chord = s
	}
	return nil
}

// decodeHeaders reads Celery's headers (or a protocol 1 body, which uses the
// same names) into t.
func (t *Task) decodeHeaders(h map[string]any) error {
	var err error
	str := func(k string) string { s, _ := h[k].(string); return s }
	t.Shadow = str("shadow")
	t.RootID = str("root_id")
	t.ParentID = str("parent_id")
	t.GroupID = str("group")
	t.Origin = str("origin")
	t.ArgsRepr = str("argsrepr")
	t.KwargsRepr = str("kwargsrepr")
	if t.ETA, err = optTime(h, "eta"); err != nil {
		return err
	}
	if t.Expires, err = optTime(h, "expires"); err != nil {
		return err
	}
	if r, ok := h["retries"]; ok && r != nil {
		n, ok := asInt(r)
		if !ok || n < 0 {
			return invalid(fmt.Sprintf("retries must be a non-negative integer, got %s", describe(r)), nil)
		}
		t.Retries = n
	}
	if gi, ok := asInt(h["group_index"]); ok {
		t.GroupIndex = &gi
	}
	if tl, ok := h["timelimit"]; ok && tl != nil {
		list, ok := tl.([]any)
		if !ok || len(list) != 2 {
			return invalid(fmt.Sprintf("timelimit must be [hard, soft], got %s", describe(tl)), nil)
		}
		for i, e := range list {
			if e == nil {
				continue
			}
			f, ok := asFloat(e)
			if !ok {
				return invalid(fmt.Sprintf("timelimit[%d] must be a number or null, got %s", i, describe(e)), nil)
			}
			t.TimeLimit[i] = &f
		}
	}
	if b, ok := h["ignore_result"].(bool); ok {
		t.IgnoreResult = b
	}
	return nil
}

func optTime(h map[string]any, key string) (*time.Time, error) {
	v, ok := h[key]
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		if tt, ok := v.(time.Time); ok { // AMQP timestamp header
			return &tt, nil
		}
		return nil, invalid(fmt.Sprintf("%s must be an ISO-8601 string, got %s", key, describe(v)), nil)
	}
	if s == "" { // some producers send "" for unset; treat it as unset
		return nil, nil
	}
	tt, err := ParseTime(s)
	if err != nil {
		return nil, invalid("bad "+key, err)
	}
	return &tt, nil
}

func decodeV1(m *Message, v any) (*Task, error) {
	body, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(fmt.Sprintf("no task header and the body is %s, not a protocol 1 mapping", describe(v)), nil)
	}
	name, _ := body["task"].(string)
	id, _ := body["id"].(string)
	if name == "" || id == "" {
		return nil, invalid("protocol 1 body lacks task or id", nil)
	}
	t := &Task{ID: id, Name: name, Protocol: 1}
	if a, ok := body["args"]; ok && a != nil {
		if t.Args, ok = a.([]any); !ok {
			return nil, invalid(fmt.Sprintf("args must be an array, got %s", describe(a)), nil)
		}
	}
	if t.Args == nil {
		t.Args = []any{}
	}
	if k, ok := body["kwargs"]; ok && k != nil {
		if t.Kwargs, ok = k.(map[string]any); !ok {
			return nil, invalid(fmt.Sprintf("kwargs must be a mapping, got %s", describe(k)), nil)
		}
	}
	if t.Kwargs == nil {
		t.Kwargs = map[string]any{}
	}
	// Protocol 1 uses "taskset" as a legacy alias of "group".
	if _, ok := body["group"].(string); !ok {
		if ts, ok := body["taskset"].(string); ok {
			body["group"] = ts
		}
	}
	// Real headers, if any, override body fields, as Celery does.
	merged := make(map[string]any, len(body)+len(m.Headers))
	for k, v := range body {
		merged[k] = v
	}
	for k, v := range m.Headers {
		if v != nil {
			merged[k] = v
		}
	}
	if err := t.decodeHeaders(merged); err != nil {
		return nil, err
	}
	if err := t.decodeEmbed(map[string]any{
		"callbacks": body["callbacks"], "errbacks": body["errbacks"], "chord": body["chord"],
	}); err != nil {
		return nil, err
	}
	if t.RootID == "" {
		t.RootID = t.ID
	}
	t.Headers = extraHeaders(m.Headers)
	return t, nil
}

func extraHeaders(h map[string]any) map[string]any {
	var out map[string]any
	for k, v := range h {
		if knownHeaders[k] {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[k] = v
	}
	return out
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return fmt.Sprintf("an array of %d", len(v.([]any)))
	case map[string]any:
		return "a mapping"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
