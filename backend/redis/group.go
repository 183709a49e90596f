package redis

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
)

// ResultNode is broker.ResultNode, kept here for callers of this package.
type ResultNode = broker.ResultNode

// ParseResultTuple is broker.ParseResultTuple.
var ParseResultTuple = broker.ParseResultTuple

// SaveGroup stores a group result as Celery's GroupResult.save() does:
// celery-taskset-meta-<id> = {"result": <group tuple>}, with SETEX and
// PUBLISH. Python's GroupResult.restore(id) reads it back.
func (b *Backend) SaveGroup(ctx context.Context, group ResultNode) error {
	if err := b.check(); err != nil {
		return err
	}
	if !group.Group || group.ID == "" {
		return errors.New("redis: SaveGroup needs a group node with an ID")
	}
	body, err := b.encode(ordered{keys: []string{"result"}, vals: []any{group.Tuple()}})
	if err != nil {
		return err
	}
	if err := b.set(ctx, GroupKey(group.ID), body); err != nil {
		return fmt.Errorf("redis: save group %s: %w", group.ID, err)
	}
	return nil
}

// RestoreGroup reads a saved group result; ErrGroupNotFound when none is
// stored.
func (b *Backend) RestoreGroup(ctx context.Context, groupID string) (ResultNode, error) {
	if err := b.check(); err != nil {
		return ResultNode{}, err
	}
	raw, err := b.client.Get(ctx, GroupKey(groupID)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return ResultNode{}, fmt.Errorf("%w: %s", ErrGroupNotFound, groupID)
	}
	if err != nil {
		return ResultNode{}, fmt.Errorf("redis: restore group %s: %w", groupID, err)
	}
	return parseGroupDoc(groupID, raw)
}

func parseGroupDoc(groupID string, raw []byte) (ResultNode, error) {
	v, _, err := decodeValue(raw)
	if err != nil {
		return ResultNode{}, fmt.Errorf("redis: group %s: %w", groupID, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return ResultNode{}, fmt.Errorf("redis: group %s: document is %T, want a mapping", groupID, v)
	}
	n, err := ParseResultTuple(m["result"])
	if err != nil {
		return ResultNode{}, fmt.Errorf("redis: group %s: %w", groupID, err)
	}
	return n, nil
}

// DeleteGroup removes a saved group result.
func (b *Backend) DeleteGroup(ctx context.Context, groupID string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := b.client.Del(ctx, GroupKey(groupID)).Err(); err != nil {
		return fmt.Errorf("redis: delete group %s: %w", groupID, err)
	}
	return nil
}

// joinTree waits for every task of a saved group, as Celery's
// GroupResult.join_native does when a chord header was saved: results in
// the group's order, a nested group as a list. The first failure is
// returned as Celery words it ("Join error: ValueError('x')").
func (b *Backend) joinTree(ctx context.Context, groupID string, n ResultNode) ([]any, *ChordError, error) {
	out := make([]any, len(n.Children))
	for i, c := range n.Children {
		if c.Group {
			sub, cerr, err := b.joinTree(ctx, groupID, c)
			if err != nil || cerr != nil {
				return nil, cerr, err
			}
			out[i] = sub
			continue
		}
		m, err := b.Wait(ctx, c.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("redis: chord %s: join %s: %w", groupID, c.ID, err)
		}
		if m.Status.Propagates() {
			exc := exceptionOf(m.Result)
			return nil, &ChordError{GroupID: groupID, TaskID: c.ID, Dependency: exc,
				Message: "Join error: " + pyExcRepr(exc)}, nil
		}
		out[i] = m.Result
	}
	return out, nil, nil
}

// exceptionOf reads the exception of a failed state.
func exceptionOf(result any) broker.ExceptionInfo {
	if e, ok := broker.ExceptionFrom(result); ok {
		return *e
	}
	return broker.ExceptionInfo{Type: "Exception", Module: "builtins", Message: []any{fmt.Sprint(result)}}
}
