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
		return nil, nil, fmt.Errorf("broker: %w: subtask_type %q is applied with ApplySignature", ErrCanvasUnsupported, sig.SubtaskType)
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

// ApplySignature sends what a signature describes: a task, or a canvas
// primitive (chain, group, chord) as Celery serializes them.
func (p *Producer) ApplySignature(ctx context.Context, sig *Signature, ao ApplyOptions) (*AsyncResult, error) {
	switch sig.SubtaskType {
	case "":
	case "chain":
		tasks, err := canvasTasks(sig.Kwargs["tasks"])
		if err != nil {
			return nil, err
		}
		return p.chain(ctx, tasks, ao)
	case "group":
		tasks, err := canvasTasks(sig.Kwargs["tasks"])
		if err != nil {
			return nil, err
		}
		gr, err := p.group(ctx, tasks, sig.Option("task_id"), ao)
		if err != nil {
			return nil, err
		}
		return &AsyncResult{ID: gr.ID, backend: p.cfg.Backend}, nil
	case "chord":
		header, err := canvasTasks(sig.Kwargs["header"])
		if err != nil {
			return nil, err
		}
		body, ok := signatureFrom(sig.Kwargs["body"])
		if !ok {
			return nil, fmt.Errorf("broker: chord signature without a body")
		}
		return p.chord(ctx, header, body, sig.Option("task_id"), ao)
	default:
		return nil, fmt.Errorf("broker: %w: subtask_type %q", ErrCanvasUnsupported, sig.SubtaskType)
	}
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

func canvasTasks(v any) ([]*Signature, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("broker: canvas signature without tasks")
	}
	out := make([]*Signature, 0, len(list))
	for _, e := range list {
		s, ok := signatureFrom(e)
		if !ok {
			return nil, fmt.Errorf("broker: canvas task is not a signature")
		}
		out = append(out, s)
	}
	return out, nil
}

// Chain sends sigs as a chain, like Celery's chain(a, b, c): each task's
// return value is prepended to the next one's arguments (unless the next
// is immutable). The result is the last task's.
func (p *Producer) Chain(ctx context.Context, sigs ...*Signature) (*AsyncResult, error) {
	if len(sigs) == 0 {
		return nil, fmt.Errorf("broker: empty chain")
	}
	return p.chain(ctx, sigs, ApplyOptions{})
}

func (p *Producer) chain(ctx context.Context, sigs []*Signature, ao ApplyOptions) (*AsyncResult, error) {
	steps := make([]*Signature, len(sigs))
	for i, s := range sigs {
		c := s.Clone()
		if c.Option("task_id") == "" {
			c.Options["task_id"] = uuid.NewString()
		}
		if c.Option("reply_to") == "" {
			c.Options["reply_to"] = p.cfg.ReplyTo
		}
		steps[i] = c
	}
	first := steps[0]
	if first.SubtaskType != "" {
		return nil, fmt.Errorf("broker: %w: a chain starting with a %s", ErrCanvasUnsupported, first.SubtaskType)
	}
	// Celery keeps the rest reversed: the next task to run is the last.
	rest := make([]Signature, 0, len(steps)-1)
	for i := len(steps) - 1; i >= 1; i-- {
		rest = append(rest, *steps[i])
	}
	ao.Chain = rest
	if _, err := p.ApplySignature(ctx, first, ao); err != nil {
		return nil, err
	}
	return p.Result(steps[len(steps)-1].Option("task_id")), nil
}

// GroupResult is a group's results, like Celery's GroupResult.
type GroupResult struct {
	ID      string
	Results []*AsyncResult
}

// Tuple renders the group as Celery's result tuple.
func (g *GroupResult) Tuple() ResultNode {
	n := ResultNode{ID: g.ID, Group: true}
	for _, r := range g.Results {
		n.Children = append(n.Children, ResultNode{ID: r.ID})
	}
	return n
}

// Get waits for every task and returns their values in order; the first
// failure is returned as its *TaskError.
func (g *GroupResult) Get(ctx context.Context) ([]any, error) {
	out := make([]any, len(g.Results))
	for i, r := range g.Results {
		v, err := r.Get(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// Group sends sigs to run in parallel under one group id, like Celery's
// group(...).apply_async(). When the backend stores groups, the group
// result is saved, so Python's GroupResult.restore(id) finds it.
func (p *Producer) Group(ctx context.Context, sigs ...*Signature) (*GroupResult, error) {
	if len(sigs) == 0 {
		return nil, fmt.Errorf("broker: empty group")
	}
	return p.group(ctx, sigs, "", ApplyOptions{})
}

func (p *Producer) group(ctx context.Context, sigs []*Signature, gid string, ao ApplyOptions) (*GroupResult, error) {
	if gid == "" {
		gid = uuid.NewString()
	}
	gr := &GroupResult{ID: gid}
	for i, s := range sigs {
		c := s.Clone()
		if c.Option("task_id") == "" {
			c.Options["task_id"] = uuid.NewString()
		}
		c.Options["group_id"] = gid
		c.Options["group_index"] = i
		res, err := p.ApplySignature(ctx, c, ao)
		if err != nil {
			return nil, err
		}
		gr.Results = append(gr.Results, res)
	}
	if gb, ok := p.cfg.Backend.(GroupBackend); ok {
		if err := gb.SaveGroup(ctx, gr.Tuple()); err != nil {
			return nil, fmt.Errorf("broker: save group %s: %w", gid, err)
		}
	}
	return gr, nil
}

// Chord sends header tasks in parallel and then body with the list of
// their results, like Celery's chord(header)(body), using the result
// backend's native join (the Redis backend), so header tasks may run on
// Python and Go workers alike. The result is the body's.
func (p *Producer) Chord(ctx context.Context, header []*Signature, body *Signature) (*AsyncResult, error) {
	if len(header) == 0 {
		return nil, fmt.Errorf("broker: chord with an empty header")
	}
	return p.chord(ctx, header, body, "", ApplyOptions{})
}

func (p *Producer) chord(ctx context.Context, header []*Signature, body *Signature, gid string, ao ApplyOptions) (*AsyncResult, error) {
	cb, ok := p.cfg.Backend.(ChordBackend)
	if !ok {
		return nil, fmt.Errorf("broker: %w: chords need a result backend with a native join (Redis)", ErrCanvasUnsupported)
	}
	if gid == "" {
		gid = uuid.NewString()
	}
	b := body.Clone()
	if b.Option("task_id") == "" {
		b.Options["task_id"] = uuid.NewString()
	}
	if b.Option("reply_to") == "" {
		b.Options["reply_to"] = p.cfg.ReplyTo
	}
	for i, s := range header {
		c := s.Clone()
		if c.Option("task_id") == "" {
			c.Options["task_id"] = uuid.NewString()
		}
		c.Options["group_id"] = gid
		c.Options["group_index"] = i
		c.Options["chord"] = b.toMap()
		if i == len(header)-1 {
			// Celery writes the size before the last header task goes out.
			if err := cb.SetChordSize(ctx, gid, len(header)); err != nil {
				return nil, fmt.Errorf("broker: chord %s: %w", gid, err)
			}
		}
		if _, err := p.ApplySignature(ctx, c, ao); err != nil {
			return nil, err
		}
	}
	return p.Result(b.Option("task_id")), nil
}
