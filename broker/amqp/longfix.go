package amqp

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
)

// longFixConn repairs one incompatibility between py-amqp and amqp091-go:
// Python writes header integers above 2^31-1 with the field type 'L'
// (signed 64-bit, as RabbitMQ's own clients do), which amqp091-go does not
// read — it would fail the whole connection with a syntax error on the
// first such message. The wire encoding of 'L' is that of 'l' (8 bytes,
// big-endian, signed), so the reader rewrites the type byte in the
// application headers of content-header frames before amqp091-go sees
// them. All other frames pass through untouched.
type longFixConn struct {
	net.Conn
	r   *bufio.Reader
	buf []byte
	off int
	raw bool // not AMQP framing (e.g. a protocol-version reply): pass through
}

func newLongFixConn(c net.Conn) *longFixConn {
	return &longFixConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}
}

const (
	frameHeader   = 2
	frameMaxBytes = 1 << 28
)

func (c *longFixConn) Read(p []byte) (int, error) {
	if c.off < len(c.buf) {
		n := copy(p, c.buf[c.off:])
		c.off += n
		return n, nil
	}
	if c.raw {
		return c.r.Read(p)
	}
	var hdr [7]byte
	if _, err := io.ReadFull(c.r, hdr[:1]); err != nil {
		return 0, err
	}
	switch hdr[0] {
	case 1, 2, 3, 8:
	default:
		c.raw = true
		c.buf, c.off = append(c.buf[:0], hdr[0]), 0
		return c.Read(p)
	}
	if _, err := io.ReadFull(c.r, hdr[1:]); err != nil {
		return 0, err
	}
	size := binary.BigEndian.Uint32(hdr[3:7])
	if size > frameMaxBytes {
		c.raw = true
		c.buf, c.off = append(c.buf[:0], hdr[:]...), 0
		return c.Read(p)
	}
	n := 7 + int(size) + 1
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf, c.off = c.buf[:n], 0
	copy(c.buf, hdr[:])
	if _, err := io.ReadFull(c.r, c.buf[7:]); err != nil {
		c.buf = c.buf[:0]
		return 0, err
	}
	if hdr[0] == frameHeader {
		fixContentHeader(c.buf[7 : 7+size])
	}
	return c.Read(p)
}

// fixContentHeader finds the headers table in a basic content header:
// class(2) weight(2) body size(8) flags(2), then content-type and
// content-encoding (short strings) if flagged, then the table.
func fixContentHeader(b []byte) {
	if len(b) < 14 {
		return
	}
	flags := binary.BigEndian.Uint16(b[12:14])
	i := 14
	for _, bit := range []uint16{0x8000, 0x4000} {
		if flags&bit != 0 {
			if i >= len(b) {
				return
			}
			i += 1 + int(b[i])
		}
	}
	if flags&0x2000 == 0 || i+4 > len(b) {
		return
	}
	n := int(binary.BigEndian.Uint32(b[i : i+4]))
	if i+4+n > len(b) || n < 0 {
		return
	}
	fixTable(b[i+4:i+4+n], 0)
}

// fixTable rewrites 'L' to 'l' in a field table's values; it stops at
// anything it does not understand and leaves that to the real parser.
func fixTable(b []byte, depth int) bool {
	for i := 0; i < len(b); {
		i += 1 + int(b[i]) // field name
		if i >= len(b) {
			return false
		}
		n, ok := fixValue(b[i:], depth)
		if !ok {
			return false
		}
		i += n
	}
	return true
}

func fixArray(b []byte, depth int) bool {
	for i := 0; i < len(b); {
		n, ok := fixValue(b[i:], depth)
		if !ok {
			return false
		}
		i += n
	}
	return true
}

// fixValue handles one typed value at b[0] and returns its encoded size.
func fixValue(b []byte, depth int) (int, bool) {
	if len(b) == 0 || depth > maxDepth {
		return 0, false
	}
	var size int
	switch b[0] {
	case 'V':
		size = 0
	case 't', 'b', 'B':
		size = 1
	case 's', 'u':
		size = 2
	case 'I', 'i', 'f':
		size = 4
	case 'D':
		size = 5
	case 'L':
		b[0] = 'l'
		size = 8
	case 'l', 'd', 'T':
		size = 8
	case 'S', 'x', 'A', 'F':
		if len(b) < 5 {
			return 0, false
		}
		size = 4 + int(binary.BigEndian.Uint32(b[1:5]))
		if size < 4 || 1+size > len(b) {
			return 0, false
		}
		inner := b[5 : 1+size]
		switch b[0] {
		case 'A':
			if !fixArray(inner, depth+1) {
				return 0, false
			}
		case 'F':
			if !fixTable(inner, depth+1) {
				return 0, false
			}
		}
	default:
		return 0, false
	}
	if 1+size > len(b) {
		return 0, false
	}
	return 1 + size, true
}
