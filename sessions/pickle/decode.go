package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors. Every failure wraps one of these; refused content is also a
// *ForbiddenError.
var (
	ErrTruncated = errors.New("pickle: truncated data")
	ErrMalformed = errors.New("pickle: malformed data")
	ErrForbidden = errors.New("pickle: forbidden content")
)

// ForbiddenError names the opcode or global the decoder refused.
type ForbiddenError struct {
	Opcode byte
	Global string // module.name, when a global was refused
	Reason string
}

func (e *ForbiddenError) Error() string {
	if e.Global != "" {
		return fmt.Sprintf("pickle: global %s is not allowed", e.Global)
	}
	if e.Reason != "" {
		return fmt.Sprintf("pickle: opcode %q refused: %s", e.Opcode, e.Reason)
	}
	return fmt.Sprintf("pickle: opcode %q (0x%02x) is not allowed", e.Opcode, e.Opcode)
}

func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// Naive is the location of a decoded naive datetime (no tzinfo); Marshal
// writes a time.Time in this location back without tzinfo.
var Naive = time.FixedZone("", 0)

// Limits bound what a decoder accepts; zero fields take the defaults.
type Limits struct {
	MaxStack int // default 100 000 stack entries
	MaxMemo  int // default 100 000 memo entries
	MaxLong  int // default 1024 bytes for one LONG1/LONG4 integer
	MaxItems int // default 1 000 000 values once shared references are expanded
}

// Unmarshal decodes one pickle with the default limits.
func Unmarshal(data []byte) (any, error) { return UnmarshalLimits(data, Limits{}) }

// UnmarshalLimits decodes one pickle.
func UnmarshalLimits(data []byte, lim Limits) (any, error) {
	if lim.MaxStack <= 0 {
		lim.MaxStack = 100_000
	}
	if lim.MaxMemo <= 0 {
		lim.MaxMemo = 100_000
	}
	if lim.MaxItems <= 0 {
		lim.MaxItems = 1_000_000
	}
	if lim.MaxLong <= 0 {
		lim.MaxLong = 1024
	}
	d := &decoder{data: data, lim: lim, memo: map[int]any{}}
	v, err := d.run()
	if err != nil {
		return nil, err
	}
	return finish(v, lim.MaxItems)
}

// Internal node types: lists and dicts must be references while decoding
// because APPEND and SETITEM mutate what the memo also points at.
type (
	list   struct{ items []any }
	tuple  struct{ items []any }
	dict   struct{ m map[string]any }
	global struct{ module, name string }
)

type decoder struct {
	data  []byte
	pos   int
	lim   Limits
	stack []any
	marks []int
	memo  map[int]any
}

func (d *decoder) errorf(base error, format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", base, d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) read(n int) ([]byte, error) {
	if n < 0 || n > len(d.data)-d.pos {
		return nil, d.errorf(ErrTruncated, "need %d bytes", n)
	}
	b := d.data[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) readLine() (string, error) {
	i := bytes.IndexByte(d.data[d.pos:], '\n')
	if i < 0 {
		return "", d.errorf(ErrTruncated, "unterminated line")
	}
	s := string(d.data[d.pos : d.pos+i])
	d.pos += i + 1
	return s, nil
}

func (d *decoder) push(v any) error {
	if len(d.stack) >= d.lim.MaxStack {
		return d.errorf(ErrMalformed, "stack deeper than %d", d.lim.MaxStack)
	}
	d.stack = append(d.stack, v)
	return nil
}

func (d *decoder) pop() (any, error) {
	if len(d.stack) == 0 || d.topIsMark() {
		return nil, d.errorf(ErrMalformed, "stack underflow")
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *decoder) topIsMark() bool {
	return len(d.marks) > 0 && d.marks[len(d.marks)-1] == len(d.stack)
}

func (d *decoder) top() (any, error) {
	if len(d.stack) == 0 || d.topIsMark() {
		return nil, d.errorf(ErrMalformed, "stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark returns the items pushed since the last MARK.
func (d *decoder) popMark() ([]any, error) {
	if len(d.marks) == 0 {
		return nil, d.errorf(ErrMalformed, "no mark")
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := append([]any(nil), d.stack[m:]...)
	d.stack = d.stack[:m]
	return items, nil
}

func (d *decoder) memoPut(i int, v any) error {
	if _, ok := d.memo[i]; !ok && len(d.memo) >= d.lim.MaxMemo {
		return d.errorf(ErrMalformed, "memo larger than %d", d.lim.MaxMemo)
	}
	d.memo[i] = v
	return nil
}

func (d *decoder) memoGet(i int) error {
	v, ok := d.memo[i]
	if !ok {
		return d.errorf(ErrMalformed, "memo %d not set", i)
	}
	return d.push(v)
}

func (d *decoder) run() (any, error) {
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf(ErrTruncated, "no STOP")
		}
		op := d.data[d.pos]
		d.pos++
		if op == opSTOP {
			v, err := d.pop()
			if err != nil {
				return nil, err
			}
			return v, nil
		}
		if err := d.step(op); err != nil {
			return nil, err
		}
	}
}

func (d *decoder) step(op byte) error {
	switch op {
	case opPROTO:
		b, err := d.read(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return d.errorf(ErrMalformed, "protocol %d", b[0])
		}
		return nil
	case opFRAME:
		_, err := d.read(8) // framing is only a read-ahead hint
		return err
	case opMARK:
		d.marks = append(d.marks, len(d.stack))
		return nil
	case opPOP:
		if d.topIsMark() {
			d.marks = d.marks[:len(d.marks)-1]
			return nil
		}
		_, err := d.pop()
		return err
	case opPOPMARK:
		_, err := d.popMark()
		return err
	case opDUP:
		v, err := d.top()
		if err != nil {
			return err
		}
		return d.push(v)
	case opNONE:
		return d.push(nil)
	case opNEWTRUE:
		return d.push(true)
	case opNEWFALSE:
		return d.push(false)
	case opBININT:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		return d.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case opBININT1:
		b, err := d.read(1)
		if err != nil {
			return err
		}
		return d.push(int64(b[0]))
	case opBININT2:
		b, err := d.read(2)
		if err != nil {
			return err
		}
		return d.push(int64(binary.LittleEndian.Uint16(b)))
	case opLONG1, opLONG4:
		var n int
		if op == opLONG1 {
			b, err := d.read(1)
			if err != nil {
				return err
			}
			n = int(b[0])
		} else {
			b, err := d.read(4)
			if err != nil {
				return err
			}
			n = int(int32(binary.LittleEndian.Uint32(b)))
		}
		if n < 0 || n > d.lim.MaxLong {
			return d.errorf(ErrMalformed, "long of %d bytes", n)
		}
		b, err := d.read(n)
		if err != nil {
			return err
		}
		return d.push(decodeLong(b))
	case opINT:
		s, err := d.readLine()
		if err != nil {
			return err
		}
		switch s { // protocol 0/1 booleans
		case "00":
			return d.push(false)
		case "01":
			return d.push(true)
		}
		return d.pushIntText(s)
	case opLONG:
		s, err := d.readLine()
		if err != nil {
			return err
		}
		return d.pushIntText(strings.TrimSuffix(s, "L"))
	case opFLOAT:
		s, err := d.readLine()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return d.errorf(ErrMalformed, "float %q", s)
		}
		return d.push(f)
	case opBINFLOAT:
		b, err := d.read(8)
		if err != nil {
			return err
		}
		return d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case opSHORTBINUNICODE, opBINUNICODE, opBINUNICODE8:
		b, err := d.readSized(op, opSHORTBINUNICODE, opBINUNICODE)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			// Python writes surrogates with "surrogatepass"; they have no
			// Go string form, so replace them rather than fail.
			return d.push(strings.ToValidUTF8(string(b), "\uFFFD"))
		}
		return d.push(string(b))
	case opSHORTBINSTRING, opBINSTRING:
		// A Python 2 str; Python 3 reads it as ASCII text by default.
		b, err := d.readSized(op, opSHORTBINSTRING, opBINSTRING)
		if err != nil {
			return err
		}
		for _, c := range b {
			if c >= 0x80 {
				return d.errorf(ErrMalformed, "non-ASCII Python 2 string")
			}
		}
		return d.push(string(b))
	case opSHORTBINBYTES, opBINBYTES, opBINBYTES8, opBYTEARRAY8:
		small := byte(opSHORTBINBYTES)
		if op == opBYTEARRAY8 {
			small = 0
		}
		b, err := d.readSized(op, small, opBINBYTES)
		if err != nil {
			return err
		}
		return d.push(append([]byte(nil), b...))
	case opEMPTYDICT:
		return d.push(&dict{m: map[string]any{}})
	case opDICT:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		m := &dict{m: make(map[string]any, len(items)/2)}
		if err := d.setItems(m, items); err != nil {
			return err
		}
		return d.push(m)
	case opSETITEM, opSETITEMS:
		var items []any
		if op == opSETITEM {
			v, err := d.pop()
			if err != nil {
				return err
			}
			k, err := d.pop()
			if err != nil {
				return err
			}
			items = []any{k, v}
		} else {
			var err error
			if items, err = d.popMark(); err != nil {
				return err
			}
		}
		t, err := d.top()
		if err != nil {
			return err
		}
		m, ok := t.(*dict)
		if !ok {
			return d.errorf(ErrMalformed, "SETITEM on %s", kind(t))
		}
		return d.setItems(m, items)
	case opEMPTYLIST:
		return d.push(&list{})
	case opLIST:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.push(&list{items: items})
	case opAPPEND, opAPPENDS:
		var items []any
		if op == opAPPEND {
			v, err := d.pop()
			if err != nil {
				return err
			}
			items = []any{v}
		} else {
			var err error
			if items, err = d.popMark(); err != nil {
				return err
			}
		}
		t, err := d.top()
		if err != nil {
			return err
		}
		l, ok := t.(*list)
		if !ok {
			return d.errorf(ErrMalformed, "APPEND on %s", kind(t))
		}
		l.items = append(l.items, items...)
		return nil
	case opEMPTYTUPLE:
		return d.push(&tuple{})
	case opTUPLE:
		items, err := d.popMark()
		if err != nil {
			return err
		}
		return d.push(&tuple{items: items})
	case opTUPLE1, opTUPLE2, opTUPLE3:
		n := int(op-opTUPLE1) + 1
		if len(d.stack)-n < 0 || (len(d.marks) > 0 && d.marks[len(d.marks)-1] > len(d.stack)-n) {
			return d.errorf(ErrMalformed, "stack underflow")
		}
		t := &tuple{items: append([]any(nil), d.stack[len(d.stack)-n:]...)}
		d.stack = d.stack[:len(d.stack)-n]
		return d.push(t)
	case opPUT:
		s, err := d.readLine()
		if err != nil {
			return err
		}
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 {
			return d.errorf(ErrMalformed, "PUT %q", s)
		}
		return d.memoTop(i)
	case opBINPUT:
		b, err := d.read(1)
		if err != nil {
			return err
		}
		return d.memoTop(int(b[0]))
	case opLONGBINPUT:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		return d.memoTop(int(binary.LittleEndian.Uint32(b)))
	case opMEMOIZE:
		return d.memoTop(len(d.memo))
	case opGET:
		s, err := d.readLine()
		if err != nil {
			return err
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return d.errorf(ErrMalformed, "GET %q", s)
		}
		return d.memoGet(i)
	case opBINGET:
		b, err := d.read(1)
		if err != nil {
			return err
		}
		return d.memoGet(int(b[0]))
	case opLONGBINGET:
		b, err := d.read(4)
		if err != nil {
			return err
		}
		return d.memoGet(int(binary.LittleEndian.Uint32(b)))
	case opGLOBAL:
		mod, err := d.readLine()
		if err != nil {
			return err
		}
		name, err := d.readLine()
		if err != nil {
			return err
		}
		return d.pushGlobal(op, mod, name)
	case opSTACKGLOBAL:
		nv, err := d.pop()
		if err != nil {
			return err
		}
		mv, err := d.pop()
		if err != nil {
			return err
		}
		mod, ok1 := mv.(string)
		name, ok2 := nv.(string)
		if !ok1 || !ok2 {
			return d.errorf(ErrMalformed, "STACK_GLOBAL needs two strings")
		}
		return d.pushGlobal(op, mod, name)
	case opREDUCE:
		args, err := d.pop()
		if err != nil {
			return err
		}
		fn, err := d.pop()
		if err != nil {
			return err
		}
		g, ok := fn.(global)
		if !ok {
			return &ForbiddenError{Opcode: op, Reason: "REDUCE of a non-global"}
		}
		t, ok := args.(*tuple)
		if !ok {
			return d.errorf(ErrMalformed, "REDUCE arguments are %s, not a tuple", kind(args))
		}
		v, err := call(g, t.items)
		if err != nil {
			return fmt.Errorf("%w (at byte %d)", err, d.pos)
		}
		return d.push(v)
	}
	return &ForbiddenError{Opcode: op}
}
