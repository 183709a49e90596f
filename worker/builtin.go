package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// RegisterBuiltins registers celeriac's own tasks, used for smoke tests,
// health checks and benchmarks:
//
//	celeriac.noop()                 returns None
//	celeriac.add(x, y)              returns x + y (ints stay ints)
//	celeriac.echo(*args, **kwargs)  returns {"args": [...], "kwargs": {...}}
//	celeriac.sleep(seconds)         sleeps, honouring cancellation; returns None
//	celeriac.fail(message)          fails with that message
func RegisterBuiltins(w *Worker) error {
	builtins := []struct {
		name string
		h    Handler
	}{
		{"celeriac.noop", HandlerFunc(func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
			return nil, nil
		})},
		{"celeriac.add", Func(add, ArgNames("x", "y"))},
		{"celeriac.echo", HandlerFunc(func(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
			if args == nil {
				args = []any{}
			}
			if kwargs == nil {
				kwargs = map[string]any{}
			}
			return map[string]any{"args": args, "kwargs": kwargs}, nil
		})},
		{"celeriac.sleep", Func(sleep, ArgNames("seconds"))},
		{"celeriac.fail", Func(func(message string) error { return errors.New(message) }, ArgNames("message"))},
	}
	for _, b := range builtins {
		if err := w.Register(b.name, b.h); err != nil {
			return err
		}
	}
	return nil
}

func add(x, y any) (any, error) {
	xi, xInt := x.(int64)
	yi, yInt := y.(int64)
	if xInt && yInt {
		s := xi + yi
		if (s > xi) == (yi > 0) {
			return s, nil
		}
	}
	xf, ok1 := number(x)
	yf, ok2 := number(y)
	if !ok1 || !ok2 {
		return nil, &TypeError{Msg: fmt.Sprintf("unsupported operand types for +: %s and %s", broker.Repr(x), broker.Repr(y))}
	}
	return xf + yf, nil
}

func number(v any) (float64, bool) {
	var f float64
	if err := broker.Convert(v, &f); err != nil {
		return 0, false
	}
	return f, true
}

func sleep(ctx context.Context, seconds float64) error {
	if seconds < 0 || math.IsNaN(seconds) {
		return &TypeError{Msg: "sleep length must be non-negative"}
	}
	t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
