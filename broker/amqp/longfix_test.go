package amqp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// contentHeader builds a basic content-header payload with content type,
// encoding and the given encoded headers table.
func contentHeader(table []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 60, 0, 0})
	_ = binary.Write(&b, binary.BigEndian, uint64(2))
	_ = binary.Write(&b, binary.BigEndian, uint16(0x8000|0x4000|0x2000))
	for _, s := range []string{"application/json", "utf-8"} {
		b.WriteByte(byte(len(s)))
		b.WriteString(s)
	}
	_ = binary.Write(&b, binary.BigEndian, uint32(len(table)))
	b.Write(table)
	return b.Bytes()
}

func field(name string, typ byte, value []byte) []byte {
	return append(append([]byte{byte(len(name))}, name...), append([]byte{typ}, value...)...)
}

func long(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func withLen(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func TestFixContentHeader(t *testing.T) {
	inner := field("deep", 'L', long(1<<50))
	array := append([]byte{'L'}, long(-5)...)
	array = append(array, 'S')
	array = append(array, withLen([]byte("L"))...)
	table := append(field("big", 'L', long(1<<40)), field("s", 'S', withLen([]byte("LLL")))...)
	table = append(table, field("nested", 'F', withLen(inner))...)
	table = append(table, field("arr", 'A', withLen(array))...)
	got := contentHeader(table)
	fixContentHeader(got)

	wantInner := field("deep", 'l', long(1<<50))
	wantArray := append([]byte{'l'}, long(-5)...)
	wantArray = append(wantArray, 'S')
	wantArray = append(wantArray, withLen([]byte("L"))...)
	wantTable := append(field("big", 'l', long(1<<40)), field("s", 'S', withLen([]byte("LLL")))...)
	wantTable = append(wantTable, field("nested", 'F', withLen(wantInner))...)
	wantTable = append(wantTable, field("arr", 'A', withLen(wantArray))...)
	if want := contentHeader(wantTable); !bytes.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// FuzzFixContentHeader: any input is safe, and only 'L' bytes change, to 'l'.
func FuzzFixContentHeader(f *testing.F) {
	f.Add(contentHeader(field("big", 'L', long(1<<40))))
	f.Add(contentHeader(field("a", 'A', withLen([]byte{'L', 0, 0, 0, 0, 0, 0, 0, 1}))))
	f.Add([]byte{0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x20, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		fixContentHeader(b)
		for i := range b {
			if b[i] != orig[i] && !(orig[i] == 'L' && b[i] == 'l') {
				t.Fatalf("byte %d changed %q -> %q", i, orig[i], b[i])
			}
		}
	})
}
