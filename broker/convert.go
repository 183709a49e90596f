package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// ErrConvert is wrapped by ConvertError.
var ErrConvert = errors.New("broker: cannot convert value")

// ConvertError says which value did not fit which Go type.
type ConvertError struct {
	Path string // e.g. "[1]" or ".user.id"
	Want reflect.Type
	Got  any
	Why  string
}

func (e *ConvertError) Error() string {
	msg := fmt.Sprintf("expected %s, got %s", e.Want, describeValue(e.Got))
	if e.Why != "" {
		msg += " (" + e.Why + ")"
	}
	if e.Path != "" {
		return e.Path + ": " + msg
	}
	return msg
}

func (e *ConvertError) Unwrap() error { return ErrConvert }

func describeValue(v any) string {
	s := repr(v)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return describe(v) + " " + s
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	unmarshaler  = reflect.TypeFor[json.Unmarshaler]()
)

// Convert stores a value of celeriac's value model (as decoded from a
// message or a result) into dst, a non-nil pointer. Numbers convert between
// Go numeric types when the value fits exactly (no silent truncation or
// overflow); time.Time accepts ISO-8601 strings; time.Duration accepts
// seconds as a number; structs are filled from mappings using their json
// tags. A mismatch is a *ConvertError naming the path, never a panic.
func Convert(v any, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("broker: Convert needs a non-nil pointer, got %T", dst)
	}
	return ConvertValue(v, rv.Elem(), "")
}

// ConvertValue is Convert for a settable reflect.Value; path prefixes errors.
func ConvertValue(v any, dst reflect.Value, path string) error {
	t := dst.Type()
	fail := func(why string) error { return &ConvertError{Path: path, Want: t, Got: v, Why: why} }

	if t.Kind() == reflect.Interface && t.NumMethod() == 0 {
		if v == nil {
			dst.SetZero()
		} else {
			dst.Set(reflect.ValueOf(v))
		}
		return nil
	}
	if t.Kind() == reflect.Pointer {
		if v == nil {
			dst.SetZero()
			return nil
		}
		p := reflect.New(t.Elem())
		if err := ConvertValue(v, p.Elem(), path); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	}
	if v == nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Map:
			dst.SetZero()
			return nil
		}
		return fail("")
	}
	switch t {
	case timeType:
		switch x := v.(type) {
		case string:
			tt, err := ParseTime(x)
			if err != nil {
				return fail("not an ISO-8601 time")
			}
			dst.Set(reflect.ValueOf(tt))
			return nil
		case time.Time:
			dst.Set(reflect.ValueOf(x))
			return nil
		}
		return fail("")
	case durationType:
		f, ok := asFloat(v)
		if !ok {
			return fail("a duration is given in seconds")
		}
		dst.SetInt(int64(f * float64(time.Second)))
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		return viaJSON(v, dst, fail)
	}
	switch t.Kind() {
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fail("")
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := exactInt(v)
		if !ok || dst.OverflowInt(i) {
			return fail(intWhy(v))
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		var u uint64
		switch x := v.(type) {
		case uint64:
			u = x
		default:
			i, ok := exactInt(v)
			if !ok || i < 0 {
				return fail(intWhy(v))
			}
			u = uint64(i)
		}
		if dst.OverflowUint(u) {
			return fail("out of range")
		}
		dst.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(string(x), 64); err != nil {
				return fail("")
			}
		default:
			var ok bool
			if f, ok = asFloat(v); !ok {
				if u, isU := v.(uint64); isU {
					f = float64(u)
				} else {
					return fail("")
				}
			}
		}
		if t.Kind() == reflect.Float32 && math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
			return fail("out of range")
		}
		dst.SetFloat(f)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fail("")
		}
		dst.SetString(s)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			switch x := v.(type) {
			case []byte:
				dst.SetBytes(append([]byte(nil), x...))
				return nil
			case string:
				dst.SetBytes([]byte(x))
				return nil
			}
		}
		list, ok := v.([]any)
		if !ok {
			return fail("")
		}
		s := reflect.MakeSlice(t, len(list), len(list))
		for i, e := range list {
			if err := ConvertValue(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Array:
		list, ok := v.([]any)
		if !ok || len(list) != t.Len() {
			return fail(fmt.Sprintf("need exactly %d items", t.Len()))
		}
		for i, e := range list {
			if err := ConvertValue(e, dst.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return fail("")
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for k, e := range m {
			ev := reflect.New(t.Elem()).Elem()
			if err := ConvertValue(e, ev, path+"."+k); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		dst.Set(out)
	case reflect.Struct:
		if _, ok := v.(map[string]any); !ok {
			return fail("a struct is filled from a mapping")
		}
		return viaJSON(v, dst, fail)
	default:
		return fail("unsupported Go type")
	}
	return nil
}

// viaJSON converts through JSON so that struct tags, embedded fields and
// custom UnmarshalJSON methods behave exactly as with encoding/json.
func viaJSON(v any, dst reflect.Value, fail func(string) error) error {
	b, err := MarshalJSON(v)
	if err != nil {
		return fail(err.Error())
	}
	p := reflect.New(dst.Type())
	if err := json.Unmarshal(b, p.Interface()); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return fail(fmt.Sprintf("field %s: expected %s, got a %s", ute.Field, ute.Type, ute.Value))
		}
		return fail(err.Error())
	}
	dst.Set(p.Elem())
	return nil
}

func exactInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), true
		}
	case json.Number:
		i, err := x.Int64()
		return i, err == nil
	default:
		if i, ok := asInt(v); ok {
			return int64(i), true
		}
	}
	return 0, false
}

func intWhy(v any) string {
	if f, ok := v.(float64); ok && f != math.Trunc(f) {
		return "has a fraction"
	}
	switch v.(type) {
	case int64, uint64, json.Number:
		return "out of range"
	}
	return ""
}
