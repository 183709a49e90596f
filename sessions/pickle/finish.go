package pickle

import (
	"fmt"
	"time"
)

// finish turns decoding nodes into plain values. Shared references stay
// shared. A structure that contains itself is refused, and so is one whose
// fully expanded size passes maxItems: a few bytes of pickle can share a
// list 2^40 times, which would hang any caller that walks or re-encodes it.
func finish(v any, maxItems int) (any, error) {
	f := finisher{done: map[any]finished{}, active: map[any]bool{}, max: maxItems}
	out, _, err := f.node(v, 0)
	return out, err
}

type finished struct {
	v    any
	size int
}

type finisher struct {
	done   map[any]finished
	active map[any]bool
	max    int
}

func (f *finisher) node(v any, depth int) (any, int, error) {
	if depth > 10_000 {
		return nil, 0, fmt.Errorf("%w: nested too deeply", ErrMalformed)
	}
	var children []any
	switch x := v.(type) {
	case *list:
		children = x.items
	case *tuple:
		children = x.items
	case *dict:
		return f.dict(x, depth)
	case global:
		return nil, 0, &ForbiddenError{Global: x.module + "." + x.name, Reason: "a bare global is not data"}
	case *time.Location:
		return nil, 0, fmt.Errorf("%w: a bare tzinfo is not supported", ErrMalformed)
	default:
		return v, 1, nil
	}
	if r, ok := f.done[v]; ok {
		return r.v, r.size, nil
	}
	if f.active[v] {
		return nil, 0, fmt.Errorf("%w: recursive structure", ErrMalformed)
	}
	f.active[v] = true
	out, size := make([]any, len(children)), 1
	for i, c := range children {
		cv, cs, err := f.node(c, depth+1)
		if err != nil {
			return nil, 0, err
		}
		out[i], size = cv, size+cs
		if size > f.max {
			return nil, 0, fmt.Errorf("%w: more than %d items once expanded", ErrMalformed, f.max)
		}
	}
	delete(f.active, v)
	f.done[v] = finished{out, size}
	return out, size, nil
}

func (f *finisher) dict(x *dict, depth int) (any, int, error) {
	if r, ok := f.done[x]; ok {
		return r.v, r.size, nil
	}
	if f.active[x] {
		return nil, 0, fmt.Errorf("%w: recursive structure", ErrMalformed)
	}
	f.active[x] = true
	out, size := make(map[string]any, len(x.m)), 1
	for k, c := range x.m {
		cv, cs, err := f.node(c, depth+1)
		if err != nil {
			return nil, 0, err
		}
		out[k], size = cv, size+cs+1
		if size > f.max {
			return nil, 0, fmt.Errorf("%w: more than %d items once expanded", ErrMalformed, f.max)
		}
	}
	delete(f.active, x)
	f.done[x] = finished{out, size}
	return out, size, nil
}
