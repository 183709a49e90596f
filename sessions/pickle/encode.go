package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"time"
)

// UnsupportedError reports a Go value Marshal cannot write.
type UnsupportedError struct {
	Type   string
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("pickle: cannot encode %s: %s", e.Type, e.Reason)
}

// Marshal writes v as a protocol-4 pickle of plain data. Map keys are
// written in sorted order so the output is deterministic.
func Marshal(v any) ([]byte, error) {
	e := &encoder{buf: []byte{opPROTO, 4}}
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	return append(e.buf, opSTOP), nil
}

type encoder struct{ buf []byte }

func (e *encoder) op(b ...byte) { e.buf = append(e.buf, b...) }

func (e *encoder) str(s string) {
	if len(s) < 256 {
		e.op(opSHORTBINUNICODE, byte(len(s)))
	} else {
		e.op(opBINUNICODE)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(s)))
	}
	e.buf = append(e.buf, s...)
}

func (e *encoder) bytes(b []byte) {
	if len(b) < 256 {
		e.op(opSHORTBINBYTES, byte(len(b)))
	} else {
		e.op(opBINBYTES)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(b)))
	}
	e.buf = append(e.buf, b...)
}

func (e *encoder) int(n int64) {
	switch {
	case n >= 0 && n < 1<<8:
		e.op(opBININT1, byte(n))
	case n >= 0 && n < 1<<16:
		e.op(opBININT2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		e.op(opBININT)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(int32(n)))
	default:
		e.long(big.NewInt(n))
	}
}

// long writes LONG1: little-endian two's complement, shortest form.
func (e *encoder) long(n *big.Int) {
	if n.IsInt64() && n.Int64() >= math.MinInt32 && n.Int64() <= math.MaxInt32 {
		e.int(n.Int64())
		return
	}
	nbytes := n.BitLen()/8 + 1 // room for the sign bit
	mod := new(big.Int).Lsh(big.NewInt(1), uint(8*nbytes))
	u := new(big.Int).Set(n)
	if n.Sign() < 0 {
		u.Add(u, mod)
	}
	be := u.FillBytes(make([]byte, nbytes))
	if nbytes < 256 {
		e.op(opLONG1, byte(nbytes))
	} else {
		e.op(opLONG4)
		e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(nbytes))
	}
	for i := len(be) - 1; i >= 0; i-- {
		e.buf = append(e.buf, be[i])
	}
}

func (e *encoder) global(module, name string) {
	e.str(module)
	e.str(name)
	e.op(opSTACKGLOBAL)
}

func (e *encoder) timedelta(d time.Duration) {
	e.global("datetime", "timedelta")
	days := int64(d / (24 * time.Hour))
	rem := d - time.Duration(days)*24*time.Hour
	if rem < 0 { // Python normalises to 0 <= seconds < 86400
		days--
		rem += 24 * time.Hour
	}
	e.int(days)
	e.int(int64(rem / time.Second))
	e.int(int64(rem % time.Second / time.Microsecond))
	e.op(opTUPLE3, opREDUCE)
}

func (e *encoder) datetime(t time.Time) error {
	if t.Year() < 1 || t.Year() > 9999 {
		return &UnsupportedError{Type: "time.Time", Reason: "year outside 1..9999"}
	}
	e.global("datetime", "datetime")
	us := t.Nanosecond() / 1000
	e.bytes([]byte{byte(t.Year() >> 8), byte(t.Year()), byte(t.Month()), byte(t.Day()),
		byte(t.Hour()), byte(t.Minute()), byte(t.Second()), byte(us >> 16), byte(us >> 8), byte(us)})
	if t.Location() == Naive {
		e.op(opTUPLE1, opREDUCE)
		return nil
	}
	// A fixed-offset timezone is what datetime.timezone can carry; a named
	// zone's rules do not travel, only its offset at this instant.
	_, off := t.Zone()
	e.global("datetime", "timezone")
	e.timedelta(time.Duration(off) * time.Second)
	e.op(opTUPLE1, opREDUCE)
	e.op(opTUPLE2, opREDUCE)
	return nil
}

func (e *encoder) value(v any, depth int) error {
	if depth > 1000 {
		return &UnsupportedError{Type: "value", Reason: "nested too deeply"}
	}
	switch x := v.(type) {
	case nil:
		e.op(opNONE)
	case bool:
		if x {
			e.op(opNEWTRUE)
		} else {
			e.op(opNEWFALSE)
		}
	case string:
		e.str(x)
	case []byte:
		e.bytes(x)
	case int64:
		e.int(x)
	case int:
		e.int(int64(x))
	case *big.Int:
		if x == nil {
			e.op(opNONE)
		} else {
			e.long(x)
		}
	case float64:
		e.op(opBINFLOAT)
		e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(x))
	case time.Time:
		return e.datetime(x)
	case time.Duration:
		e.timedelta(x)
	case []any:
		e.op(opEMPTYLIST)
		if len(x) > 0 {
			e.op(opMARK)
			for _, c := range x {
				if err := e.value(c, depth+1); err != nil {
					return err
				}
			}
			e.op(opAPPENDS)
		}
	case map[string]any:
		e.op(opEMPTYDICT)
		if len(x) > 0 {
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			e.op(opMARK)
			for _, k := range keys {
				e.str(k)
				if err := e.value(x[k], depth+1); err != nil {
					return err
				}
			}
			e.op(opSETITEMS)
		}
	default:
		return e.reflect(v, depth)
	}
	return nil
}

func (e *encoder) reflect(v any, depth int) error {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		e.int(rv.Int())
		return nil
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint, reflect.Uintptr:
		e.long(new(big.Int).SetUint64(rv.Uint()))
		return nil
	case reflect.Float32:
		return e.value(rv.Float(), depth)
	case reflect.String:
		e.str(rv.String())
		return nil
	case reflect.Bool:
		return e.value(rv.Bool(), depth)
	case reflect.Slice, reflect.Array:
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
			e.op(opNONE)
			return nil
		}
	}
	return &UnsupportedError{Type: fmt.Sprintf("%T", v), Reason: "not plain data"}
}
