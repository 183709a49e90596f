package worker

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/celeriac/celeriac/broker"
)

// Handler runs one task. Args and Kwargs hold the message's arguments in
// celeriac's value model; the returned value is stored as the result.
//
// Most code does not implement Handler directly: [Func] adapts an ordinary
// typed Go function.
type Handler interface {
	Run(ctx context.Context, args []any, kwargs map[string]any) (any, error)
}

// HandlerFunc adapts a function with Handler's signature.
type HandlerFunc func(ctx context.Context, args []any, kwargs map[string]any) (any, error)

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
	return f(ctx, args, kwargs)
}

// Func adapts a typed Go function into a Handler. The function's first
// parameter may be a context.Context; its results are (R, error), (error),
// (R) or nothing. Arguments bind in one of two ways:
//
//   - Plain parameters, func(ctx, x int, y int) (int, error): positional
//     args bind in order. Keyword arguments bind too when the parameter
//     names are given with [ArgNames] (Go keeps no parameter names).
//   - One struct parameter, func(ctx, in AddArgs) (int, error): keyword
//     arguments fill the field whose json tag (or lower-cased name) matches
//     (add.delay(x=2, y=3)), positional args fill the fields in declaration
//     order (add.delay(2, 3)), and a single dict argument fills the struct
//     from its keys (create.delay({"x": 2, "y": 3})). Fields left unset keep
//     their zero value; mark required ones with `celery:"required"`.
//
// Values convert with [broker.Convert]: a JSON number 2.0 binds to an int,
// "2" does not. A wrong-typed, missing or unexpected argument fails the
// task with a TypeError naming it (Python's own error for a bad call),
// never a panic. Func panics only on a function it cannot adapt, at
// registration time, like regexp.MustCompile.
func Func(fn any, opts ...FuncOption) Handler {
	h, err := newFuncHandler(fn, opts...)
	if err != nil {
		panic(err)
	}
	return h
}

// FuncOption configures Func.
type FuncOption func(*funcHandler)

// ArgNames names the function's parameters (after the context) so keyword
// arguments can bind to them: Func(add, ArgNames("x", "y")).
func ArgNames(names ...string) FuncOption {
	return func(h *funcHandler) { h.names = names }
}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

type funcHandler struct {
	fn       reflect.Value
	withCtx  bool
	params   []reflect.Type
	variadic bool
	names    []string
	// struct binding
	structIn reflect.Type
	fields   []structField
	// results
	hasValue, hasErr bool
}

type structField struct {
	index    int
	name     string
	required bool
}

func newFuncHandler(fn any, opts ...FuncOption) (*funcHandler, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return nil, fmt.Errorf("worker: Func needs a function, got %T", fn)
	}
	t := v.Type()
	h := &funcHandler{fn: v, variadic: t.IsVariadic()}
	for _, o := range opts {
		o(h)
	}
	in := 0
	if t.NumIn() > 0 && t.In(0) == ctxType {
		h.withCtx = true
		in = 1
	}
	for i := in; i < t.NumIn(); i++ {
		h.params = append(h.params, t.In(i))
	}
	switch t.NumOut() {
	case 0:
	case 1:
		if t.Out(0) == errorType {
			h.hasErr = true
		} else {
			h.hasValue = true
		}
	case 2:
		if t.Out(1) != errorType {
			return nil, fmt.Errorf("worker: Func %s: second result must be error", t)
		}
		h.hasValue, h.hasErr = true, true
	default:
		return nil, fmt.Errorf("worker: Func %s: too many results", t)
	}
	if len(h.params) == 1 && !h.variadic && h.params[0].Kind() == reflect.Struct && h.names == nil {
		h.structIn = h.params[0]
		for i := 0; i < h.structIn.NumField(); i++ {
			f := h.structIn.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			h.fields = append(h.fields, structField{index: i, name: name,
				required: strings.Contains(f.Tag.Get("celery"), "required")})
		}
	}
	if h.names != nil && len(h.names) != len(h.params) {
		return nil, fmt.Errorf("worker: Func %s: ArgNames has %d names for %d parameters", t, len(h.names), len(h.params))
	}
	return h, nil
}

// TypeError is a task call with arguments that do not fit the handler.
// It is stored as Python's builtins.TypeError.
type TypeError struct{ Msg string }

func (e *TypeError) Error() string { return e.Msg }

// CeleryException maps the error to Python's TypeError.
func (e *TypeError) CeleryException() *broker.ExceptionInfo {
	return &broker.ExceptionInfo{Type: "TypeError", Module: "builtins", Message: []any{e.Msg}}
}

func typeErrorf(format string, a ...any) error { return &TypeError{Msg: fmt.Sprintf(format, a...)} }

func (h *funcHandler) Run(ctx context.Context, args []any, kwargs map[string]any) (any, error) {
	in, err := h.bind(args, kwargs)
	if err != nil {
		return nil, err
	}
	if h.withCtx {
		in = append([]reflect.Value{reflect.ValueOf(ctx)}, in...)
	}
	var out []reflect.Value
	if h.variadic {
		out = h.fn.CallSlice(in)
	} else {
		out = h.fn.Call(in)
	}
	var val any
	var rerr error
	if h.hasValue {
		val = out[0].Interface()
	}
	if h.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			rerr = e.Interface().(error)
		}
	}
	return val, rerr
}

func (h *funcHandler) bind(args []any, kwargs map[string]any) ([]reflect.Value, error) {
	if h.structIn != nil {
		v, err := h.bindStruct(args, kwargs)
		if err != nil {
			return nil, err
		}
		return []reflect.Value{v}, nil
	}
	n := len(h.params)
	fixed := n
	if h.variadic {
		fixed = n - 1
	}
	vals := make([]any, fixed)
	set := make([]bool, fixed)
	for i, a := range args {
		if i >= fixed {
			if !h.variadic {
				return nil, typeErrorf("takes %d positional arguments but %d were given", fixed, len(args))
			}
			break
		}
		vals[i], set[i] = a, true
	}
	if len(kwargs) > 0 {
		if h.names == nil {
			return nil, typeErrorf("got keyword arguments %s but the handler's parameters are unnamed (register it with worker.ArgNames)", keyList(kwargs))
		}
		for k, v := range kwargs {
			i := indexOf(h.names[:fixed], k)
			if i < 0 {
				return nil, typeErrorf("got an unexpected keyword argument %q", k)
			}
			if set[i] {
				return nil, typeErrorf("got multiple values for argument %q", k)
			}
			vals[i], set[i] = v, true
		}
	}
	out := make([]reflect.Value, 0, n)
	for i := 0; i < fixed; i++ {
		if !set[i] {
			return nil, typeErrorf("missing required argument %s", h.argName(i))
		}
		rv := reflect.New(h.params[i]).Elem()
		if err := broker.ConvertValue(vals[i], rv, ""); err != nil {
			return nil, typeErrorf("argument %s: %v", h.argName(i), err)
		}
		out = append(out, rv)
	}
	if h.variadic {
		rest := []any{}
		if len(args) > fixed {
			rest = args[fixed:]
		}
		sl := reflect.New(h.params[n-1]).Elem()
		if err := broker.ConvertValue(rest, sl, ""); err != nil {
			return nil, typeErrorf("variadic arguments: %v", err)
		}
		out = append(out, sl)
	}
	return out, nil
}

func (h *funcHandler) argName(i int) string {
	if h.names != nil {
		return fmt.Sprintf("%d (%s)", i, h.names[i])
	}
	return fmt.Sprint(i)
}

func (h *funcHandler) bindStruct(args []any, kwargs map[string]any) (reflect.Value, error) {
	v := reflect.New(h.structIn).Elem()
	lenient := false
	if len(args) == 1 && len(kwargs) == 0 {
		if m, ok := args[0].(map[string]any); ok {
			// One dict argument: the struct is the argument. Unknown keys
			// are ignored, as encoding/json ignores them.
			args, kwargs, lenient = nil, m, true
		}
	}
	if len(args) > len(h.fields) {
		return v, typeErrorf("takes %d positional arguments but %d were given", len(h.fields), len(args))
	}
	set := make([]bool, len(h.fields))
	for i, a := range args {
		f := h.fields[i]
		if err := broker.ConvertValue(a, v.Field(f.index), ""); err != nil {
			return v, typeErrorf("argument %d (%s): %v", i, f.name, err)
		}
		set[i] = true
	}
	for k, a := range kwargs {
		i := -1
		for j, f := range h.fields {
			if f.name == k {
				i = j
				break
			}
		}
		if i < 0 {
			if lenient {
				continue
			}
			return v, typeErrorf("got an unexpected keyword argument %q", k)
		}
		if set[i] {
			return v, typeErrorf("got multiple values for argument %q", k)
		}
		if err := broker.ConvertValue(a, v.Field(h.fields[i].index), ""); err != nil {
			return v, typeErrorf("argument %s: %v", k, err)
		}
		set[i] = true
	}
	for i, f := range h.fields {
		if f.required && !set[i] {
			return v, typeErrorf("missing required argument %q", f.name)
		}
	}
	return v, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func keyList(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
