package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// State is a Celery task state.
type State string

// Celery's task states.
const (
	StatePending  State = "PENDING"
	StateReceived State = "RECEIVED"
	StateStarted  State = "STARTED"
	StateSuccess  State = "SUCCESS"
	StateFailure  State = "FAILURE"
	StateRevoked  State = "REVOKED"
	StateRejected State = "REJECTED"
	StateRetry    State = "RETRY"
	StateIgnored  State = "IGNORED"
)

// Ready reports whether s is final: SUCCESS, FAILURE or REVOKED.
func (s State) Ready() bool {
	return s == StateSuccess || s == StateFailure || s == StateRevoked
}

// Propagates reports whether s is a failure that AsyncResult.Get returns as an error.
func (s State) Propagates() bool { return s == StateFailure || s == StateRevoked }

// ExceptionInfo is an exception as Celery serializes it for JSON and
// msgpack result backends; Python's AsyncResult re-raises it.
type ExceptionInfo struct {
	Type    string `json:"exc_type" msgpack:"exc_type"`
	Message []any  `json:"exc_message" msgpack:"exc_message"`
	Module  string `json:"exc_module" msgpack:"exc_module"`
}

// ToMap renders the exception as Celery's dict.
func (e *ExceptionInfo) ToMap() map[string]any {
	msg := e.Message
	if msg == nil {
		msg = []any{}
	}
	return map[string]any{"exc_type": e.Type, "exc_message": msg, "exc_module": e.Module}
}

// Text returns the exception's message as Python's str(exc) would.
func (e *ExceptionInfo) Text() string {
	switch len(e.Message) {
	case 0:
		return ""
	case 1:
		if s, ok := e.Message[0].(string); ok {
			return s
		}
		return repr(e.Message[0])
	}
	return ArgsRepr(e.Message)
}

// ExceptionFrom reads an exception dict from a decoded result.
func ExceptionFrom(v any) (*ExceptionInfo, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	typ, ok := m["exc_type"].(string)
	if !ok {
		return nil, false
	}
	e := &ExceptionInfo{Type: typ}
	e.Module, _ = m["exc_module"].(string)
	switch msg := m["exc_message"].(type) {
	case []any:
		e.Message = msg
	case nil:
	default:
		e.Message = []any{msg}
	}
	return e, true
}

// Common Celery exceptions.
var (
	ExcNotRegistered = func(name string) *ExceptionInfo {
		return &ExceptionInfo{Type: "NotRegistered", Message: []any{name}, Module: "celery.exceptions"}
	}
	ExcRevoked = func(reason string) *ExceptionInfo {
		return &ExceptionInfo{Type: "TaskRevokedError", Message: []any{reason}, Module: "celery.exceptions"}
	}
	ExcTimeLimit = func(seconds float64) *ExceptionInfo {
		return &ExceptionInfo{Type: "TimeLimitExceeded", Message: []any{seconds}, Module: "billiard.exceptions"}
	}
)

// ResultMeta is a task's stored state, the document Celery keeps in
// celery-task-meta-<id> (Redis) or sends as an RPC reply.
type ResultMeta struct {
	TaskID    string
	Status    State
	Result    any // the return value, STARTED info, or an exception dict
	Traceback *string
	Children  []any // result tuples; nil writes null
	DateDone  *time.Time
	GroupID   string
	ParentID  string
	// Extended fields (result_extended); written when Name is set.
	Name    string
	Args    []any
	Kwargs  map[string]any
	Worker  string
	Retries *int
	Queue   string

	// Where an RPC backend sends the state; not stored.
	ReplyTo       string
	CorrelationID string
	// ContentType of the stored document, when read back.
	ContentType string
}

// Exception returns the failure carried by an exception state, if any.
func (m *ResultMeta) Exception() (*ExceptionInfo, bool) {
	if m.Status != StateFailure && m.Status != StateRevoked && m.Status != StateRetry {
		return nil, false
	}
	return ExceptionFrom(m.Result)
}

// Err returns the task's failure as a *TaskError for FAILURE and REVOKED,
// or nil.
func (m *ResultMeta) Err() error {
	if !m.Status.Propagates() {
		return nil
	}
	e := &TaskError{TaskID: m.TaskID, State: m.Status}
	if exc, ok := m.Exception(); ok {
		e.Exception = *exc
	} else {
		e.Exception = ExceptionInfo{Type: "Exception", Message: []any{fmt.Sprint(m.Result)}}
	}
	if m.Traceback != nil {
		e.Traceback = *m.Traceback
	}
	return e
}

// ToMap renders the meta with Celery's keys in Celery's order of meaning.
func (m *ResultMeta) ToMap() map[string]any {
	d := map[string]any{
		"status":    string(m.Status),
		"result":    m.Result,
		"traceback": nil,
		"children":  nil,
		"date_done": nil,
		"task_id":   m.TaskID,
	}
	if m.Traceback != nil {
		d["traceback"] = *m.Traceback
	}
	if m.Children != nil {
		d["children"] = m.Children
	}
	if m.DateDone != nil {
		d["date_done"] = FormatDateDone(*m.DateDone)
	}
	if m.GroupID != "" {
		d["group_id"] = m.GroupID
	}
	if m.ParentID != "" {
		d["parent_id"] = m.ParentID
	}
	if m.Name != "" {
		d["name"] = m.Name
		d["args"] = orEmptyList(m.Args)
		d["kwargs"] = orEmptyMap(m.Kwargs)
		d["worker"] = m.Worker
		d["retries"] = m.Retries
		d["queue"] = m.Queue
	}
	return d
}

func orEmptyList(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func orEmptyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// MetaFromMap reads a decoded result document.
func MetaFromMap(v any) (*ResultMeta, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("broker: result document is %s, not a mapping", describe(v))
	}
	m := &ResultMeta{}
	st, _ := d["status"].(string)
	if st == "" {
		return nil, errors.New("broker: result document has no status")
	}
	m.Status = State(st)
	m.Result = d["result"]
	if tb, ok := d["traceback"].(string); ok {
		m.Traceback = &tb
	}
	m.Children, _ = d["children"].([]any)
	if s, ok := d["date_done"].(string); ok && s != "" {
		if t, err := ParseTime(s); err == nil {
			m.DateDone = &t
		}
	}
	m.TaskID, _ = d["task_id"].(string)
	m.GroupID, _ = d["group_id"].(string)
	m.ParentID, _ = d["parent_id"].(string)
	m.Name, _ = d["name"].(string)
	m.Args, _ = d["args"].([]any)
	m.Kwargs, _ = d["kwargs"].(map[string]any)
	m.Worker, _ = d["worker"].(string)
	if r, ok := asInt(d["retries"]); ok {
		m.Retries = &r
	}
	m.Queue, _ = d["queue"].(string)
	return m, nil
}

// TaskError is a task failure read from a result backend: what Python's
// AsyncResult.get() would raise.
type TaskError struct {
	TaskID    string
	State     State
	Exception ExceptionInfo
	Traceback string
}

func (e *TaskError) Error() string {
	name := e.Exception.Type
	if e.Exception.Module != "" && e.Exception.Module != "builtins" {
		name = e.Exception.Module + "." + name
	}
	if txt := e.Exception.Text(); txt != "" {
		return fmt.Sprintf("task %s %s: %s: %s", e.TaskID, strings.ToLower(string(e.State)), name, txt)
	}
	return fmt.Sprintf("task %s %s: %s", e.TaskID, strings.ToLower(string(e.State)), name)
}

// ErrResultTimeout is returned when waiting for a result outlives its context.
var ErrResultTimeout = errors.New("broker: timed out waiting for the result")

// ResultBackend stores and fetches task states, byte-compatible with a
// Celery result backend.
type ResultBackend interface {
	// Store writes meta for meta.TaskID. It never overwrites a stored
	// SUCCESS (Celery's rule), and notifies waiters.
	Store(ctx context.Context, meta *ResultMeta) error
	// Get returns the stored state; PENDING when nothing is stored.
	Get(ctx context.Context, taskID string) (*ResultMeta, error)
	// Wait blocks until the task reaches a ready state or ctx ends.
	Wait(ctx context.Context, taskID string) (*ResultMeta, error)
	// Forget deletes the stored state.
	Forget(ctx context.Context, taskID string) error
	Close() error
}

// ReplyBackend is implemented by result backends that receive results as
// messages on the client's own reply queue (rpc://). A Producer given one
// uses its queue name as reply_to, and calls OnTaskSend before each send so
// the reply queue exists before any result can be sent to it, as Celery's
// RPCBackend.on_task_call does.
type ReplyBackend interface {
	ResultBackend
	ReplyTo() string
	OnTaskSend(ctx context.Context) error
}

// BackendOptions are settings shared by every result backend.
type BackendOptions struct {
	Options
	// Expires is how long results are kept; 0 means Celery's default, one
	// day; negative keeps them forever.
	Expires time.Duration
	// Serializer for stored documents: "json" (default) or "msgpack".
	Serializer string
	// Broker is the connection an RPC backend publishes replies through.
	Broker Broker
}

// BackendOpenFunc opens a result backend for a URL.
type BackendOpenFunc func(ctx context.Context, rawURL string, opts BackendOptions) (ResultBackend, error)

var backends = map[string]BackendOpenFunc{}

var backendMu sync.RWMutex

// RegisterBackend makes a result backend available to OpenBackend.
func RegisterBackend(open BackendOpenFunc, schemes ...string) {
	backendMu.Lock()
	defer backendMu.Unlock()
	for _, s := range schemes {
		backends[s] = open
	}
}

// OpenBackend opens the result backend chosen by the URL's scheme
// (redis://, rediss://, rpc://, …). The backend package must be linked in.
func OpenBackend(ctx context.Context, rawURL string, opts BackendOptions) (ResultBackend, error) {
	u, err := url.Parse(strings.SplitN(rawURL, ";", 2)[0])
	if err != nil {
		return nil, fmt.Errorf("broker: bad result backend URL %q: %w", Redact(rawURL), err)
	}
	backendMu.RLock()
	open, ok := backends[u.Scheme]
	backendMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("broker: unknown result backend scheme %q in %q", u.Scheme, Redact(rawURL))
	}
	opts.Options = opts.Options.WithDefaults()
	if opts.Expires == 0 {
		opts.Expires = 24 * time.Hour
	}
	return open(ctx, rawURL, opts)
}
