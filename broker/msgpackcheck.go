package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkMsgpack walks a msgpack document without decoding it and verifies
// that every declared length fits in the bytes that follow. The decoder
// library allocates what a container header claims, so a 6-byte message
// declaring a 4-billion-element array would otherwise exhaust memory.
func checkMsgpack(b []byte) error {
	// pending counts the values still to read; containers add to it.
	pending := 1
	depth := 0
	i := 0
	need := func(n uint64) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("msgpack: length %d at offset %d exceeds the remaining %d bytes", n, i, len(b)-i)
		}
		return nil
	}
	for pending > 0 {
		if i >= len(b) {
			return errors.New("msgpack: truncated document")
		}
		c := b[i]
		i++
		pending--
		var skip uint64
		var items uint64
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			items = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			var err error
			if skip, items, err = msgpackHeader(c, b[i:], &i); err != nil {
				return err
			}
		}
		if items > 0 {
			// Every value takes at least one byte.
			if err := need(items); err != nil {
				return err
			}
			depth++
			if depth > 10000 {
				return errors.New("msgpack: nested too deeply")
			}
			pending += int(items)
		}
		if err := need(skip); err != nil {
			return err
		}
		i += int(skip)
	}
	if i != len(b) {
		return errors.New("msgpack: trailing data after value")
	}
	return nil
}

// msgpackHeader reads the length fields of the variable-size formats.
func msgpackHeader(c byte, rest []byte, i *int) (skip, items uint64, err error) {
	be := func(n int) (uint64, error) {
		if len(rest) < n {
			return 0, errors.New("msgpack: truncated header")
		}
		*i += n
		switch n {
		case 1:
			return uint64(rest[0]), nil
		case 2:
			return uint64(binary.BigEndian.Uint16(rest)), nil
		case 4:
			return uint64(binary.BigEndian.Uint32(rest)), nil
		}
		return binary.BigEndian.Uint64(rest), nil
	}
	var n uint64
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return 1, 0, nil
	case 0xcd, 0xd1:
		return 2, 0, nil
	case 0xca, 0xce, 0xd2:
		return 4, 0, nil
	case 0xcb, 0xcf, 0xd3:
		return 8, 0, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16 (+1 type byte)
		return 1 + 1<<(c-0xd4), 0, nil
	case 0xc4, 0xd9: // bin8, str8
		n, err = be(1)
		return n, 0, err
	case 0xc5, 0xda:
		n, err = be(2)
		return n, 0, err
	case 0xc6, 0xdb:
		n, err = be(4)
		return n, 0, err
	case 0xc7, 0xc8, 0xc9: // ext8/16/32: length then type byte
		n, err = be(1 << (c - 0xc7))
		return n + 1, 0, err
	case 0xdc:
		n, err = be(2)
		return 0, n, err
	case 0xdd:
		n, err = be(4)
		return 0, n, err
	case 0xde:
		n, err = be(2)
		return 0, 2 * n, err
	case 0xdf:
		n, err = be(4)
		return 0, 2 * n, err
	}
	return 0, 0, fmt.Errorf("msgpack: invalid type byte 0x%02x", c)
}
