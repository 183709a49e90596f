package static

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

var errReadOnlyFS = syscall.EROFS

// stat is what decides whether a file changed since the last scan.
type stat struct {
	size  int64
	mtime int64 // ns
	ino   uint64
}

func statOf(fi fs.FileInfo) stat {
	s := stat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// sig is the stat of a file and of each of its sibling variants (zero when
// absent): content is reused across scans while its sig is unchanged.
type sig [numCodings]stat

// repContent is one stored representation of a file: the identity bytes
// or one compressed variant.
type repContent struct {
	coding coding
	size   int64
	etag   string // quoted, from the SHA-256 of these bytes
	data   []byte // the bytes, or nil to read base/rel from disk
	base   string // directory opened with os.OpenInRoot
	rel    string
	mtime  time.Time // expected mtime on disk, to notice a file changed under us
}

// content is what a scan learnt about one file: hashes, sizes, variants.
// It does not depend on configuration or the manifest, so it survives
// reloads that only change headers.
type content struct {
	name  string
	sig   sig
	sha   [32]byte
	mtime time.Time
	perm  fs.FileMode
	ctype string
	reps  []repContent // reps[0] is identity; the rest sorted by size
}

// etagOf is a strong ETag from the content: equal bytes give equal tags on
// every instance and after every deploy, unlike nginx's mtime-size tags.
func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return etagFromSum(sum)
}

func etagFromSum(sum [32]byte) string {
	return `"` + hex.EncodeToString(sum[:10]) + `"`
}

// builder scans the root into a new index, reusing what the previous one
// knew about unchanged files.
type builder struct {
	cfg        *Config
	log        *slog.Logger
	root       *os.Root
	prev       map[string]*content
	memUsed    atomic.Int64
	unwritable atomic.Int64
}

// keepInMemory reserves n bytes of the memory budget for a small file.
func (b *builder) keepInMemory(n int64) bool {
	if n > b.cfg.MemoryFileLimit {
		return false
	}
	if b.memUsed.Add(n) > b.cfg.MemoryBudget {
		b.memUsed.Add(-n)
		return false
	}
	return true
}

// scan walks the root and returns the content of every servable file.
func (b *builder) scan(ctx context.Context) (map[string]*content, error) {
	stats := map[string]fs.FileInfo{}
	err := fs.WalkDir(b.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name == "." {
				return err
			}
			b.log.Warn("static: skipping unreadable path", "path", name, "err", err)
			return nil
		}
		if name == "." {
			return nil
		}
		if _, _, v := resolvePath("/", "/"+name, "/"+name); v != pathOK {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return ctx.Err()
		}
		// Root.Stat follows a symlink only while it stays inside the root;
		// one pointing outside (or absolute) fails here and is skipped.
		fi, err := b.root.Stat(name)
		if err != nil {
			b.log.Warn("static: skipping file", "path", name, "err", err)
			return nil
		}
		if fi.Mode().IsRegular() {
			stats[name] = fi
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// A .br/.zst/.gz next to an existing file is a variant of it, not a
	// resource of its own.
	variantOf := map[string]bool{}
	for name := range stats {
		for c := codingBr; c < numCodings; c++ {
			if base, ok := strings.CutSuffix(name, suffixes[c]); ok {
				if _, exists := stats[base]; exists {
					variantOf[name] = true
				}
			}
		}
	}

	out := make(map[string]*content, len(stats))
	var todo []string
	for name, fi := range stats {
		if variantOf[name] {
			continue
		}
		var s sig
		s[identity] = statOf(fi)
		for c := codingBr; c < numCodings; c++ {
			if vfi, ok := stats[name+suffixes[c]]; ok {
				s[c] = statOf(vfi)
			}
		}
		if old, ok := b.prev[name]; ok && old.sig == s {
			out[name] = old
			for _, r := range old.reps {
				if r.data != nil {
					b.memUsed.Add(int64(len(r.data)))
				}
			}
			continue
		}
		out[name] = &content{name: name, sig: s, mtime: fi.ModTime(), perm: fi.Mode().Perm(), ctype: contentType(name)}
		todo = append(todo, name)
	}

	// Small files first, so the memory budget goes to the many small
	// assets the fast path serves best.
	slices.SortFunc(todo, func(a, c string) int { return int(out[a].sig[0].size - out[c].sig[0].size) })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	var (
		mu     sync.Mutex
		failed []string
	)
	for _, name := range todo {
		c := out[name]
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := b.load(c, stats); err != nil {
				b.log.Warn("static: skipping file", "path", name, "err", err)
				mu.Lock()
				failed = append(failed, name)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, name := range failed {
		delete(out, name)
	}
	if n := b.unwritable.Load(); n > 1 {
		b.log.Info("static: variants kept in memory", "files", n)
	}
	return out, nil
}

// load reads one changed file: hashes it, picks up valid sibling variants
// and creates the missing ones.
func (b *builder) load(c *content, stats map[string]fs.FileInfo) error {
	data, err := b.readFile(c.name, c.sig[identity].size)
	if err != nil {
		return err
	}
	c.sha = sha256.Sum256(data)
	id := repContent{coding: identity, size: int64(len(data)), etag: etagFromSum(c.sha),
		base: b.cfg.Root, rel: c.name, mtime: c.mtime}
	if b.keepInMemory(id.size) {
		id.data = data
	}
	c.reps = []repContent{id}

	var missing []coding
	for cd := codingBr; cd < numCodings; cd++ {
		vname := c.name + suffixes[cd]
		vfi, ok := stats[vname]
		// A variant older than its original is stale (the original was
		// rewritten after the variant was made): ignore it, or remake it.
		if ok && !vfi.ModTime().Before(c.mtime) {
			vdata, err := b.readFile(vname, vfi.Size())
			if err == nil {
				r := repContent{coding: cd, size: int64(len(vdata)), etag: etagOf(vdata),
					base: b.cfg.Root, rel: vname, mtime: vfi.ModTime()}
				if b.keepInMemory(r.size) {
					r.data = vdata
				}
				c.reps = append(c.reps, r)
				continue
			}
			b.log.Warn("static: ignoring unreadable variant", "path", vname, "err", err)
		}
		if b.cfg.Variants != VariantsExisting && containsCoding(b.wantCodings(), cd) {
			missing = append(missing, cd)
		}
	}
	if len(missing) > 0 && len(data) >= minCompressSize && compressible(c.ctype) {
		b.makeVariants(c, data, missing)
	}
	slices.SortStableFunc(c.reps[1:], func(x, y repContent) int { return int(x.size - y.size) })
	return nil
}

func (b *builder) wantCodings() []coding {
	cs := make([]coding, 0, len(b.cfg.Encodings))
	for _, e := range b.cfg.Encodings {
		if c, ok := parseCoding(e); ok {
			cs = append(cs, c)
		}
	}
	return cs
}

// readFile reads a file through the root (so a symlink swapped in after the
// walk still cannot lead outside) and checks it has the size the walk saw.
func (b *builder) readFile(name string, size int64) ([]byte, error) {
	f, err := b.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	// A file still growing (mid-copy) is picked up again by the next scan:
	// its mtime will move.
	var one [1]byte
	if n, _ := f.Read(one[:]); n > 0 {
		return nil, errors.New("file grew while being read")
	}
	return data, nil
}
