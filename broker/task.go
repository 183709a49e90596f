package broker

import (
	"time"
)

// Task is a decoded Celery task message: everything the worker needs to run
// it, whichever protocol version and serializer it came in.
type Task struct {
	ID   string
	Name string

	Args   []any
	Kwargs map[string]any

	// Canvas: what to do after the task (the body's "embed" in protocol 2).
	Callbacks []Signature // link
	Errbacks  []Signature // link_error
	// Chain holds the tasks still to run after this one, in Celery's order:
	// the next one is the LAST element.
	Chain []Signature
	Chord *Signature // the chord body when this task is a chord header member

	ETA     *time.Time
	Expires *time.Time
	Retries int
	// TimeLimit is the message's [hard, soft] limit in seconds; nil = unset.
	TimeLimit [2]*float64

	RootID     string
	ParentID   string
	GroupID    string
	GroupIndex *int
	Shadow     string
	Origin     string
	ArgsRepr   string
	KwargsRepr string
	// IgnoreResult asks the worker not to store a SUCCESS result.
	IgnoreResult bool

	// Properties of the message the task came in.
	ReplyTo       string
	CorrelationID string
	Priority      uint8
	// ContentType is the serializer of the body (results use the same).
	ContentType string
	// Protocol is 1 or 2: the version the message was decoded from.
	Protocol int
	// Headers are headers beyond Celery's own (custom apply_async headers,
	// and keys added by later Celery versions), kept for retries.
	Headers map[string]any
}

// HardTimeLimit returns the message's hard time limit, or 0.
func (t *Task) HardTimeLimit() time.Duration { return limitDuration(t.TimeLimit[0]) }

// SoftTimeLimit returns the message's soft time limit, or 0.
func (t *Task) SoftTimeLimit() time.Duration { return limitDuration(t.TimeLimit[1]) }

func limitDuration(p *float64) time.Duration {
	if p == nil || *p <= 0 {
		return 0
	}
	return time.Duration(*p * float64(time.Second))
}

// DisplayName is the name shown in logs and events: the shadow name when set.
func (t *Task) DisplayName() string {
	if t.Shadow != "" {
		return t.Shadow
	}
	return t.Name
}

// Signature is a task invocation that can be sent later: a callback, a chain
// link, a chord body, or a canvas primitive (group, chain, chord), in the
// dict shape Celery serializes.
type Signature struct {
	Task    string         `json:"task" msgpack:"task"`
	Args    []any          `json:"args" msgpack:"args"`
	Kwargs  map[string]any `json:"kwargs" msgpack:"kwargs"`
	Options map[string]any `json:"options" msgpack:"options"`
	// SubtaskType is "" for a plain task, or "chain", "group", "chord"…
	SubtaskType string `json:"subtask_type" msgpack:"subtask_type"`
	Immutable   bool   `json:"immutable" msgpack:"immutable"`
	// ChordSize is sent by Celery 5.3+; kept when present.
	ChordSize *int `json:"chord_size,omitempty" msgpack:"chord_size,omitempty"`
}

// NewSignature returns a signature for name with the given arguments.
func NewSignature(name string, args ...any) *Signature {
	if args == nil {
		args = []any{}
	}
	return &Signature{Task: name, Args: args, Kwargs: map[string]any{}, Options: map[string]any{}}
}

// Option returns a string option ("task_id", "queue", …), or "".
func (s *Signature) Option(key string) string {
	v, _ := s.Options[key].(string)
	return v
}

// Clone returns a copy whose Args, Kwargs and Options can be changed.
func (s *Signature) Clone() *Signature {
	c := *s
	c.Args = append([]any(nil), s.Args...)
	c.Kwargs = cloneMap(s.Kwargs)
	c.Options = cloneMap(s.Options)
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// toMap renders the signature as the dict Celery writes, with every key
// present: args [] and kwargs/options {} rather than null.
func (s *Signature) toMap() map[string]any {
	args := s.Args
	if args == nil {
		args = []any{}
	}
	kwargs := s.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	opts := s.Options
	if opts == nil {
		opts = map[string]any{}
	}
	var st any
	if s.SubtaskType != "" {
		st = s.SubtaskType
	}
	m := map[string]any{
		"task": s.Task, "args": args, "kwargs": kwargs, "options": opts,
		"subtask_type": st, "immutable": s.Immutable,
	}
	if s.ChordSize != nil {
		m["chord_size"] = *s.ChordSize
	}
	return m
}

// signatureFrom reads a signature dict from a decoded body.
func signatureFrom(v any) (*Signature, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	name, _ := m["task"].(string)
	s := &Signature{Task: name}
	s.Args, _ = m["args"].([]any)
	if s.Args == nil {
		s.Args = []any{}
	}
	s.Kwargs, _ = m["kwargs"].(map[string]any)
	if s.Kwargs == nil {
		s.Kwargs = map[string]any{}
	}
	s.Options, _ = m["options"].(map[string]any)
	if s.Options == nil {
		s.Options = map[string]any{}
	}
	s.SubtaskType, _ = m["subtask_type"].(string)
	s.Immutable, _ = m["immutable"].(bool)
	if n, ok := asInt(m["chord_size"]); ok {
		s.ChordSize = &n
	}
	return s, true
}

// SignaturesFrom reads a list of signature dicts (a single one is taken
// as a list of one), as found in link and link_error options.
func SignaturesFrom(v any) ([]Signature, bool) { return signaturesFrom(v) }

func signaturesFrom(v any) ([]Signature, bool) {
	if v == nil {
		return nil, true
	}
	list, ok := v.([]any)
	if !ok {
		// Celery accepts a single signature where a list is expected.
		if s, ok := signatureFrom(v); ok {
			return []Signature{*s}, true
		}
		return nil, false
	}
	out := make([]Signature, 0, len(list))
	for _, e := range list {
		s, ok := signatureFrom(e)
		if !ok {
			return nil, false
		}
		out = append(out, *s)
	}
	return out, true
}

func signaturesToList(sigs []Signature) any {
	if sigs == nil {
		return nil
	}
	out := make([]any, len(sigs))
	for i := range sigs {
		out[i] = sigs[i].toMap()
	}
	return out
}

// asInt reads an integer from the value model.
func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		return int(x), true
	case int:
		return x, true
	case uint64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	case int32:
		return int(x), true
	case int8:
		return int(x), true
	case int16:
		return int(x), true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	}
	return 0, false
}

// asFloat reads a number from the value model.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}
