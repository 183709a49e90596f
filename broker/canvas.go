package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ApplyOptions are what the sender of a signature adds to it: the parent
// task's return value (prepended to mutable signatures' args) and the
// workflow bookkeeping Celery propagates.
type ApplyOptions struct {
	PrependArgs []any
	ParentID    string
	RootID      string
	// Chain is the remaining chain to embed in the sent task.
	Chain []Signature
}

// SignatureTask builds the task a signature describes, applying Celery's
// options (task_id, queue, routing_key, exchange, priority, countdown,
// eta, expires, link, link_error, group_id, group_index, chord,
// time_limit, soft_time_limit, headers, shadow, ignore_result, reply_to).
// It returns the task and the queue/exchange/routing key to publish to.
func (p *Producer) SignatureTask(sig *Signature, ao ApplyOptions) (t *Task, opts []SendOption, err error) {
	if sig.Task == "" {
		return nil, nil, fmt.Errorf("broker: signature without a task name")
	}
	if sig.SubtaskType != "" {
		return nil, nil, fmt.Errorf("broker: %w: subtask_type %q", ErrCanvasUnsupported, sig.SubtaskType)
	}
	o := sig.Options
	t = &Task{Name: sig.Task, Kwargs: sig.Kwargs, ParentID: ao.ParentID, RootID: ao.RootID, Chain: ao.Chain}
	args := sig.Args
	if !sig.Immutable && len(ao.PrependArgs) > 0 {
		args = append(append([]any{}, ao.PrependArgs...), sig.Args...)
	}
	t.Args = args
	t.ID, _ = o["task_id"].(string)
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	t.GroupID, _ = o["group_id"].(string)
	if gi, ok := asInt(o["group_index"]); ok {
		t.GroupIndex = &gi
	}
	t.Shadow, _ = o["shadow"].(string)
	t.ReplyTo, _ = o["reply_to"].(string)
	if b, ok := o["ignore_result"].(bool); ok {
		t.IgnoreResult = b
	}
	if l, ok := signaturesFrom(o["link"]); ok {
		t.Callbacks = l
	}
	if l, ok := signaturesFrom(o["link_error"]); ok {
		t.Errbacks = l
	}
	if c := o["chord"]; c != nil {
		if s, ok := signatureFrom(c); ok {
			t.Chord = s
		}
	}
	if h, ok := o["headers"].(map[string]any); ok {
		t.Headers = h
	}
	hard, hok := asFloat(o["time_limit"])
	soft, sok := asFloat(o["soft_time_limit"])
	if hok {
		t.TimeLimit[0] = &hard
	}
	if sok {
		t.TimeLimit[1] = &soft
	}
	if s, ok := o["eta"].(string); ok {
		if eta, err := ParseTime(s); err == nil {
			t.ETA = &eta
		}
	}
	if cd, ok := asFloat(o["countdown"]); ok {
		opts = append(opts, WithCountdown(time.Duration(cd*float64(time.Second))))
	}
	switch e := o["expires"].(type) {
	case string:
		if exp, err := ParseTime(e); err == nil {
			t.Expires = &exp
		}
	default:
		if secs, ok := asFloat(e); ok {
			opts = append(opts, WithExpires(time.Duration(secs*float64(time.Second))))
		}
	}
	if q, ok := o["queue"].(string); ok && q != "" {
		opts = append(opts, WithQueue(q))
	}
	ex, _ := o["exchange"].(string)
	rk, _ := o["routing_key"].(string)
	if ex != "" {
		opts = append(opts, WithExchange(ex, rk))
	} else if rk != "" {
		opts = append(opts, WithRoutingKey(rk))
	}
	if pr, ok := asInt(o["priority"]); ok && pr >= 0 && pr <= 255 {
		opts = append(opts, WithPriority(uint8(pr)))
	}
	if s, ok := o["serializer"].(string); ok && (s == SerializerJSON || s == SerializerMsgpack) {
		opts = append(opts, WithSerializer(s))
	}
	return t, opts, nil
}

// ErrCanvasUnsupported is returned for canvas primitives a sender cannot apply.
var ErrCanvasUnsupported = fmt.Errorf("broker: canvas primitive not supported")

// ApplySignature sends the task a signature describes.
func (p *Producer) ApplySignature(ctx context.Context, sig *Signature, ao ApplyOptions) (*AsyncResult, error) {
	t, opts, err := p.SignatureTask(sig, ao)
	if err != nil {
		return nil, err
	}
	opts = append([]SendOption{WithTask(t)}, opts...)
	return p.Send(ctx, t.Name, t.Args, t.Kwargs, opts...)
}

// ResultTuple is Celery's serialized reference to a single result:
// [[id, parent], null].
func ResultTuple(id string) []any { return []any{[]any{id, nil}, nil} }
