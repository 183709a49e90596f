package signing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// ErrTooLarge means a compressed payload inflates past the configured limit.
var ErrTooLarge = errors.New("signing: decompressed payload too large")

// Writers and readers are pooled: a zlib state is tens of kilobytes and
// session loads sit on the hot path of every request.
var (
	writers = sync.Pool{New: func() any {
		w, _ := zlib.NewWriterLevel(nil, 6) // Python's zlib.compress default
		return w
	}}
	readers sync.Pool
)

func deflate(data []byte) []byte {
	var buf bytes.Buffer
	w := writers.Get().(*zlib.Writer)
	w.Reset(&buf)
	_, _ = w.Write(data) // bytes.Buffer writes cannot fail
	_ = w.Close()
	writers.Put(w)
	return buf.Bytes()
}

// Inflate decompresses a zlib (RFC 1950) stream, refusing output larger
// than limit bytes.
func Inflate(data []byte, limit int) ([]byte, error) { return inflate(data, limit) }

func inflate(data []byte, limit int) ([]byte, error) {
	src := bytes.NewReader(data)
	var r io.ReadCloser
	if v := readers.Get(); v != nil {
		r = v.(io.ReadCloser)
		if err := r.(zlib.Resetter).Reset(src, nil); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
	} else {
		var err error
		if r, err = zlib.NewReader(src); err != nil {
			return nil, fmt.Errorf("zlib: %w", err)
		}
	}
	defer readers.Put(r)
	out := bytes.NewBuffer(make([]byte, 0, 4*len(data)))
	n, err := io.Copy(out, io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if n > int64(limit) {
		return nil, ErrTooLarge
	}
	return out.Bytes(), nil
}

// Deflate compresses data as Python's zlib.compress(data) does (level 6).
func Deflate(data []byte) []byte { return deflate(data) }
