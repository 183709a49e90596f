package pyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrSyntax wraps every decoding failure.
var ErrSyntax = errors.New("pyjson: invalid JSON")

// UnsupportedError reports a value Marshal refuses to write.
type UnsupportedError struct {
	Type   string
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("pyjson: cannot encode %s: %s", e.Type, e.Reason)
}

// Style selects the separators.
type Style int

const (
	// Compact is json.dumps(..., separators=(",", ":")), as Django's signing.
	Compact Style = iota
	// Spaced is json.dumps's default ", " and ": ", as django-redis's
	// JSONSerializer writes.
	Spaced
)

// Unmarshal parses one JSON value. Python's NaN/Infinity extensions are
// refused with ErrSyntax.
func Unmarshal(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("%w: trailing data", ErrSyntax)
	}
	return convert(v)
}

// convert replaces json.Number with int64, *big.Int or float64, following
// Python: a literal with '.', 'e' or 'E' is a float, anything else an int.
func convert(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return Number(string(x))
	case []any:
		for i := range x {
			c, err := convert(x[i])
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	case map[string]any:
		for k, e := range x {
			c, err := convert(e)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	}
	return v, nil
}

// Number converts a JSON number literal to int64, *big.Int or float64.
func Number(s string) (any, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%w: number %q", ErrSyntax, s)
		}
		return f, nil // out of range gives ±Inf, as Python's float() does
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("%w: number %q", ErrSyntax, s)
	}
	return b, nil
}

// Marshal writes v as Python's json.dumps with ensure_ascii. Map keys are
// sorted so the output is deterministic.
func Marshal(v any, style Style) ([]byte, error) {
	e := encoder{comma: ",", colon: ":"}
	if style == Spaced {
		e.comma, e.colon = ", ", ": "
	}
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct {
	buf          []byte
	comma, colon string
}

const maxDepth = 1000 // Python's default recursion limit is of this order

func (e *encoder) value(v any, depth int) error {
	if depth > maxDepth {
		return &UnsupportedError{Type: "value", Reason: "nested too deeply"}
	}
	switch x := v.(type) {
	case nil:
		e.buf = append(e.buf, "null"...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case string:
		e.buf = AppendString(e.buf, x)
	case int64:
		e.buf = strconv.AppendInt(e.buf, x, 10)
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(x), 10)
	case *big.Int:
		if x == nil {
			e.buf = append(e.buf, "null"...)
			break
		}
		e.buf = x.Append(e.buf, 10)
	case float64:
		return e.float(x)
	case []any:
		e.buf = append(e.buf, '[')
		for i, c := range x {
			if i > 0 {
				e.buf = append(e.buf, e.comma...)
			}
			if err := e.value(c, depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, e.comma...)
			}
			e.buf = AppendString(e.buf, k)
			e.buf = append(e.buf, e.colon...)
			if err := e.value(x[k], depth+1); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
	default:
		return e.reflect(v, depth)
	}
	return nil
}

// reflect handles the remaining Go kinds: sized ints, float32, other slices
// and maps with string keys.
func (e *encoder) reflect(v any, depth int) error {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		e.buf = strconv.AppendInt(e.buf, rv.Int(), 10)
		return nil
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, rv.Uint(), 10)
		return nil
	case reflect.Float32:
		return e.float(rv.Float())
	case reflect.String:
		e.buf = AppendString(e.buf, rv.String())
		return nil
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, rv.Bool())
		return nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return &UnsupportedError{Type: "[]byte", Reason: "Python bytes are not JSON serializable"}
		}
		s := make([]any, rv.Len())
		for i := range s {
			s[i] = rv.Index(i).Interface()
		}
		return e.value(s, depth)
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return &UnsupportedError{Type: rv.Type().String(), Reason: "map keys must be strings"}
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return e.value(m, depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
	}
	return &UnsupportedError{Type: fmt.Sprintf("%T", v), Reason: "not a JSON type"}
}

// float writes f as Python's repr does: shortest round-trip digits, always
// with a '.' or an exponent so Python reads a float back.
func (e *encoder) float(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return &UnsupportedError{Type: "float", Reason: "NaN and Infinity are not JSON"}
	}
	if f == 0 {
		if math.Signbit(f) {
			e.buf = append(e.buf, "-0.0"...)
		} else {
			e.buf = append(e.buf, "0.0"...)
		}
		return nil
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	// Log10 can be off by one at exact powers of ten; the 'e' form tells.
	es := strconv.FormatFloat(f, 'e', -1, 64)
	if i := strings.IndexByte(es, 'e'); i >= 0 {
		exp, _ = strconv.Atoi(es[i+1:])
	}
	if exp < -4 || exp >= 16 {
		// Python writes 1e-05 and 1e+16: at least two exponent digits.
		mant, ex, _ := strings.Cut(es, "e")
		sign := ex[0]
		digits := strings.TrimLeft(ex[1:], "0")
		if len(digits) < 2 {
			digits = strings.Repeat("0", 2-len(digits)) + digits
		}
		e.buf = append(e.buf, mant...)
		e.buf = append(e.buf, 'e', sign)
		e.buf = append(e.buf, digits...)
		return nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	e.buf = append(e.buf, s...)
	if !strings.Contains(s, ".") {
		e.buf = append(e.buf, ".0"...)
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string with Python's ensure_ascii
// escaping: \" \\ \n \r \t \b \f, other control characters and every rune
// above U+007F as \uXXXX, astral runes as UTF-16 surrogate pairs. Invalid
// UTF-8 becomes U+FFFD.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				buf = append(buf, '\\', '"')
			case '\\':
				buf = append(buf, '\\', '\\')
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				if c < 0x20 {
					buf = appendU(buf, rune(c))
				} else {
					buf = append(buf, c)
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			buf = appendU(appendU(buf, r1), r2)
		} else {
			buf = appendU(buf, r)
		}
	}
	return append(buf, '"')
}

func appendU(buf []byte, r rune) []byte {
	return append(buf, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
