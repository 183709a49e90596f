package broker

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes v as JSON that Python reads back with the same types:
// floats keep a fraction or exponent (2.0 stays a float in Python, where Go's
// encoding/json would write 2 and Python would read an int), NaN and
// infinities are written as Python writes them, and map keys are sorted so
// output is deterministic. Values the model does not cover (structs,
// json.Marshaler) go through encoding/json without HTML escaping.
func MarshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encodeJSON(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeJSON(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writeJSONString(b, x)
	case int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case float64:
		writePyFloat(b, x, 64)
	case float32:
		writePyFloat(b, float64(x), 32)
	case json.Number:
		b.WriteString(string(x))
	case json.RawMessage:
		if len(x) == 0 {
			b.WriteString("null")
		} else {
			b.Write(x)
		}
	case time.Time:
		writeJSONString(b, FormatTime(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := encodeJSON(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k)
			b.WriteString(": ")
			if err := encodeJSON(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case json.Marshaler:
		out, err := x.MarshalJSON()
		if err != nil {
			return err
		}
		b.Write(out)
	default:
		return encodeReflect(b, v)
	}
	return nil
}

// encodeReflect handles typed slices, maps with string keys and numbers of
// other kinds; everything else falls back to encoding/json.
func encodeReflect(b *bytes.Buffer, v any) error {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(rv.Int(), 10))
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString(strconv.FormatUint(rv.Uint(), 10))
		return nil
	case reflect.Float32, reflect.Float64:
		writePyFloat(b, rv.Float(), 64)
		return nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			b.WriteString("null")
			return nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			break // []byte: base64 like encoding/json
		}
		b.WriteByte('[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := encodeJSON(b, rv.Index(i).Interface()); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		if rv.IsNil() {
			b.WriteString("null")
			return nil
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, c reflect.Value) int {
			switch {
			case a.String() < c.String():
				return -1
			case a.String() > c.String():
				return 1
			}
			return 0
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, k.String())
			b.WriteString(": ")
			if err := encodeJSON(b, rv.MapIndex(k).Interface()); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			b.WriteString("null")
			return nil
		}
		if _, ok := v.(json.Marshaler); !ok && rv.Elem().Kind() != reflect.Struct {
			return encodeJSON(b, rv.Elem().Interface())
		}
	}
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Write(bytes.TrimRight(tmp.Bytes(), "\n"))
	return nil
}

// writePyFloat writes f the way Python's repr does inside json.dumps.
func writePyFloat(b *bytes.Buffer, f float64, bits int) {
	switch {
	case math.IsNaN(f):
		b.WriteString("NaN")
		return
	case math.IsInf(f, 1):
		b.WriteString("Infinity")
		return
	case math.IsInf(f, -1):
		b.WriteString("-Infinity")
		return
	}
	abs := math.Abs(f)
	var s string
	if abs == 0 || (abs >= 1e-4 && abs < 1e16) {
		s = strconv.FormatFloat(f, 'f', -1, bits)
	} else {
		s = strconv.FormatFloat(f, 'e', -1, bits)
	}
	b.WriteString(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || c == 'e' {
			return
		}
	}
	b.WriteString(".0")
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s as a JSON string. Non-ASCII text stays UTF-8 (the
// body's content_encoding is utf-8); invalid UTF-8 becomes U+FFFD.
func writeJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		// U+2028/U+2029 are valid JSON but break JavaScript consumers (Flower).
		if r == '\u2028' || r == '\u2029' {
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
