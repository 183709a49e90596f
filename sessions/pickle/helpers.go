package pickle

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"
)

func (d *decoder) memoTop(i int) error {
	v, err := d.top()
	if err != nil {
		return err
	}
	return d.memoPut(i, v)
}

// readSized reads a length-prefixed body: a 1-byte length for the short
// opcode, 4 bytes for the middle one, 8 bytes otherwise.
func (d *decoder) readSized(op, short, mid byte) ([]byte, error) {
	var n uint64
	switch op {
	case short:
		b, err := d.read(1)
		if err != nil {
			return nil, err
		}
		n = uint64(b[0])
	case mid:
		b, err := d.read(4)
		if err != nil {
			return nil, err
		}
		n = uint64(binary.LittleEndian.Uint32(b))
	default:
		b, err := d.read(8)
		if err != nil {
			return nil, err
		}
		n = binary.LittleEndian.Uint64(b)
	}
	if n > uint64(len(d.data)-d.pos) {
		return nil, d.errorf(ErrTruncated, "need %d bytes", n)
	}
	return d.read(int(n))
}

func (d *decoder) pushIntText(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return d.push(n)
	}
	if len(s) > 3*d.lim.MaxLong {
		return d.errorf(ErrMalformed, "integer too long")
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return d.errorf(ErrMalformed, "integer %q", s)
	}
	return d.push(b)
}

func (d *decoder) setItems(m *dict, items []any) error {
	if len(items)%2 != 0 {
		return d.errorf(ErrMalformed, "odd number of dict items")
	}
	for i := 0; i < len(items); i += 2 {
		k, ok := items[i].(string)
		if !ok {
			return d.errorf(ErrMalformed, "dict key is %s; only string keys are supported", kind(items[i]))
		}
		m.m[k] = items[i+1]
	}
	return nil
}

// decodeLong reads a little-endian two's-complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(len(b))
		return int64(u<<shift) >> shift // sign-extend
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return normInt(n)
}

func normInt(n *big.Int) any {
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

func kind(v any) string {
	switch v.(type) {
	case *dict:
		return "a dict"
	case *list:
		return "a list"
	case *tuple:
		return "a tuple"
	case global:
		return "a global"
	case nil:
		return "None"
	}
	return fmt.Sprintf("%T", v)
}
