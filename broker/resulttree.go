package broker

import (
	"errors"
	"fmt"
)

// ResultNode is one node of Celery's result tree, the "result tuple" found
// in children, saved groups and chord headers: a task result, or a group
// of results when Group is true.
type ResultNode struct {
	ID       string
	Parent   *ResultNode
	Group    bool
	Children []ResultNode // only for groups
}

// Tuple renders n as Celery's as_tuple(): [[id, parent], null] for a task,
// [[id, parent], [child, …]] for a group.
func (n ResultNode) Tuple() []any {
	var parent any
	if n.Parent != nil {
		parent = n.Parent.Tuple()
	}
	var nodes any
	if n.Group {
		children := make([]any, len(n.Children))
		for i, c := range n.Children {
			children[i] = c.Tuple()
		}
		nodes = children
	}
	return []any{[]any{n.ID, parent}, nodes}
}

// maxTupleDepth bounds recursion on untrusted input.
const maxTupleDepth = 64

// ParseResultTuple reads a result tuple as Celery's result_from_tuple does
// (the id part may also be a bare string).
func ParseResultTuple(v any) (ResultNode, error) {
	return parseTuple(v, 0)
}

func parseTuple(v any, depth int) (ResultNode, error) {
	if depth > maxTupleDepth {
		return ResultNode{}, errors.New("broker: result tuple nested too deeply")
	}
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return ResultNode{}, fmt.Errorf("broker: result tuple is %T, want [[id, parent], children]", v)
	}
	var n ResultNode
	switch res := pair[0].(type) {
	case string:
		n.ID = res
	case []any:
		if len(res) != 2 {
			return ResultNode{}, fmt.Errorf("broker: result tuple id part has %d items, want 2", len(res))
		}
		id, ok := res[0].(string)
		if !ok {
			return ResultNode{}, fmt.Errorf("broker: result id is %T, want a string", res[0])
		}
		n.ID = id
		if res[1] != nil {
			p, err := parseTuple(res[1], depth+1)
			if err != nil {
				return ResultNode{}, err
			}
			n.Parent = &p
		}
	default:
		return ResultNode{}, fmt.Errorf("broker: result tuple id part is %T", pair[0])
	}
	if pair[1] != nil {
		nodes, ok := pair[1].([]any)
		if !ok {
			return ResultNode{}, fmt.Errorf("broker: group children are %T, want a list", pair[1])
		}
		n.Group = true
		n.Children = make([]ResultNode, 0, len(nodes))
		for _, c := range nodes {
			cn, err := parseTuple(c, depth+1)
			if err != nil {
				return ResultNode{}, err
			}
			n.Children = append(n.Children, cn)
		}
	}
	return n, nil
}
