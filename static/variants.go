package static

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

const (
	// minCompressSize: below this the saving is smaller than the response
	// headers and not worth a variant.
	minCompressSize = 256
	// brotliBigInput: larger inputs use quality 9 instead of 11, which is
	// an order of magnitude faster and within a few percent in size.
	brotliBigInput = 1 << 20
)

// zstdEncoder is shared: EncodeAll may be called concurrently. The window
// is capped at 8 MiB because RFC 9659 (zstd as an HTTP content coding)
// lets decoders refuse larger windows, and browsers do.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(8<<20),
		zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic("static: zstd encoder: " + err.Error()) // only on invalid options
	}
	return enc
})

// compress encodes src with c. The output is deterministic (gzip has no
// name and a zero mtime), so every instance produces the same bytes and
// the same ETag.
func compress(c coding, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(src) / 3)
	switch c {
	case codingBr:
		q := brotli.BestCompression
		if len(src) > brotliBigInput {
			q = 9
		}
		w := brotli.NewWriterLevel(&buf, q)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case codingGzip:
		w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case codingZstd:
		return zstdEncoder().EncodeAll(src, make([]byte, 0, len(src)/3)), nil
	default:
		return nil, fmt.Errorf("static: cannot compress with %v", c)
	}
	return buf.Bytes(), nil
}

// pays reports whether a compressed size is worth serving: at most 95 % of
// the original, the threshold WhiteNoise uses too.
func pays(orig, compressed int) bool {
	return int64(compressed)*100 <= int64(orig)*95
}

// makeVariants creates the missing variants of one file. Brotli goes first:
// when even it does not pay, the others are not tried.
func (b *builder) makeVariants(c *content, src []byte, want []coding) {
	order := []coding{codingBr, codingZstd, codingGzip}
	tried := false
	for _, cd := range order {
		if !containsCoding(want, cd) {
			continue
		}
		out, err := compress(cd, src)
		if err != nil {
			b.log.Warn("static: compress failed", "file", c.name, "encoding", cd.String(), "err", err)
			continue
		}
		if !pays(len(src), len(out)) {
			if !tried && cd == codingBr {
				return
			}
			continue
		}
		tried = true
		r := repContent{coding: cd, size: int64(len(out)), etag: etagOf(out), data: out, mtime: c.mtime}
		if b.cfg.Variants == VariantsAuto && b.writeSibling(c, cd, out) {
			r.base, r.rel = b.cfg.Root, c.name+suffixes[cd]
			if !b.keepInMemory(int64(len(out))) {
				r.data = nil
			}
		} else {
			b.memUsed.Add(int64(len(out))) // no file behind it: memory it is
		}
		c.reps = append(c.reps, r)
	}
}

func containsCoding(cs []coding, c coding) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// writeSibling writes data as name+suffix next to the original, atomically
// (a hidden temporary file renamed into place), with the original's mode and
// mtime so the variant reads as current. It reports false if the directory
// is not writable; the caller keeps the variant in memory instead.
func (b *builder) writeSibling(c *content, cd coding, data []byte) bool {
	final := c.name + suffixes[cd]
	dir, base := path.Split(final)
	tmp := dir + ".celeriac-" + base + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
	f, err := b.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, c.perm&0o666)
	if err != nil {
		b.noteUnwritable(err, final)
		return false
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	err = errors.Join(werr, cerr)
	if err == nil {
		err = b.root.Chtimes(tmp, c.mtime, c.mtime)
	}
	if err == nil {
		err = b.root.Rename(tmp, final)
	}
	if err != nil {
		_ = b.root.Remove(tmp)
		b.noteUnwritable(err, final)
		return false
	}
	return true
}

// noteUnwritable logs the first failure to write a variant; read-only roots
// are normal (containers), so the rest are counted, not logged.
func (b *builder) noteUnwritable(err error, name string) {
	if b.unwritable.Add(1) == 1 {
		level := b.log.Info
		if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, errReadOnlyFS) {
			level = b.log.Warn
		}
		level("static: cannot write variants next to originals; keeping them in memory", "file", name, "err", err)
	}
}
