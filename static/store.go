package static

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// store keeps the hashed files of recent manifests so that they stay
// servable after a deploy replaces the root. Layout:
//
//	<dir>/objects/ab/abcdef…        identity bytes, named by SHA-256
//	<dir>/objects/ab/abcdef….br     variants of it (also .zst, .gz)
//	<dir>/records/<ns>-<digest>.json  one per manifest seen: hashed name → object
//
// Objects and records are written to a temporary name and renamed, so
// several instances may share one store (a shared volume): each adds the
// records of the release it serves, and each serves the hashed names of
// the newest KeepManifests distinct manifests it finds there — including
// a newer release's, which is what an old instance needs when the new
// release's pages reach it mid-deploy.
type store struct {
	dir   string
	keep  int
	log   *slog.Logger
	grace time.Duration // unreferenced objects younger than this survive GC
}

// storeRecord is one manifest's snapshot.
type storeRecord struct {
	Created  int64                 `json:"created"`
	Manifest string                `json:"manifest"` // SHA-256 of staticfiles.json
	Files    map[string]storedFile `json:"files"`
}

type storedFile struct {
	SHA256   string   `json:"sha256"`
	Size     int64    `json:"size"`
	MTime    int64    `json:"mtime"` // of the original, for Last-Modified
	Variants []string `json:"variants,omitempty"`
}

// defaultStoreDir is a directory per root under the user cache directory.
func defaultStoreDir(root string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(cache, "celeriac", "static", hex.EncodeToString(sum[:8])), nil
}

func openStore(dir string, keep int, log *slog.Logger) (*store, error) {
	for _, sub := range []string{"objects", "records"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	return &store{dir: dir, keep: keep, log: log, grace: 10 * time.Minute}, nil
}

func (s *store) objectsDir() string { return filepath.Join(s.dir, "objects") }

func objectName(sha string, c coding) string { return sha[:2] + "/" + sha + suffixes[c] }

// records lists record file names, oldest first (names start with the
// creation time in zero-padded nanoseconds).
func (s *store) records() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "records"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func recordDigest(name string) string {
	_, d, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
	return d
}

// kept returns the newest record names with keep distinct manifest
// digests, newest first.
func (s *store) kept(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for i := len(names) - 1; i >= 0 && len(seen) < s.keep; i-- {
		d := recordDigest(names[i])
		if seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, names[i])
	}
	return out
}

// snapshot records the current manifest, copying its hashed files (and
// their variants) into the store, then prunes what fell out of the window.
func (s *store) snapshot(ctx context.Context, files map[string]*content, manifestBytes []byte, m *Manifest) error {
	sum := sha256.Sum256(manifestBytes)
	digest := hex.EncodeToString(sum[:8])
	names, err := s.records()
	if err != nil {
		return err
	}
	// Already recorded — by this instance at an earlier start, or by
	// another instance sharing the store. Recording it again would make an
	// old release look newest and push a newer one out of the window.
	for _, n := range names {
		if recordDigest(n) == digest {
			return nil
		}
	}
	rec := storeRecord{Created: time.Now().UnixNano(), Manifest: hex.EncodeToString(sum[:]), Files: map[string]storedFile{}}
	for _, hashed := range sortedValues(m.Paths) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := files[hashed]
		if c == nil {
			continue // named by the manifest but not on disk
		}
		sha := hex.EncodeToString(c.sha[:])
		sf := storedFile{SHA256: sha, Size: c.reps[0].size, MTime: c.mtime.UnixNano()}
		ok := true
		for _, r := range c.reps {
			if err := s.putObject(objectName(sha, r.coding), r); err != nil {
				if r.coding == identity {
					s.log.Warn("static: cannot store hashed file", "file", hashed, "err", err)
					ok = false
					break
				}
				continue
			}
			if r.coding != identity {
				sf.Variants = append(sf.Variants, r.coding.String())
			}
		}
		if ok {
			rec.Files[hashed] = sf
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%020d-%s.json", rec.Created, digest)
	if err := writeAtomic(filepath.Join(s.dir, "records", name), data); err != nil {
		return err
	}
	s.log.Info("static: manifest recorded in store", "record", name, "files", len(rec.Files))
	return s.prune()
}

// putObject makes sure an object exists; an existing one is touched so a
// concurrent GC by another instance leaves it alone.
func (s *store) putObject(name string, r repContent) error {
	p := filepath.Join(s.objectsDir(), filepath.FromSlash(name))
	now := time.Now()
	if err := os.Chtimes(p, now, now); err == nil {
		return nil
	}
	data := r.data
	if data == nil {
		f, err := os.OpenInRoot(r.base, r.rel)
		if err != nil {
			return err
		}
		data, err = io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return writeAtomic(p, data)
}

// prune deletes records outside the window and objects no kept record
// references (unless younger than the grace period: another instance may
// be about to write the record that references them).
func (s *store) prune() error {
	names, err := s.records()
	if err != nil {
		return err
	}
	kept := s.kept(names)
	referenced := map[string]bool{}
	for _, n := range kept {
		rec, err := s.readRecord(n)
		if err != nil {
			return err
		}
		for _, f := range rec.Files {
			referenced[f.SHA256] = true
		}
	}
	for _, n := range names {
		if !slices.Contains(kept, n) {
			if err := os.Remove(filepath.Join(s.dir, "records", n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	cutoff := time.Now().Add(-s.grace)
	return filepath.WalkDir(s.objectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		sha, _, _ := strings.Cut(d.Name(), ".")
		if referenced[sha] {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

func (s *store) readRecord(name string) (*storeRecord, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, "records", name))
	if err != nil {
		return nil, err
	}
	var rec storeRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("static: store record %s: %w", name, err)
	}
	return &rec, nil
}

// load returns the hashed files of the kept records (a newer record wins a
// name), and the kept record names, which change when another instance adds one.
func (s *store) load() (map[string]storedFile, []string, error) {
	names, err := s.records()
	if err != nil {
		return nil, nil, err
	}
	kept := s.kept(names)
	files := map[string]storedFile{}
	for i := len(kept) - 1; i >= 0; i-- {
		rec, err := s.readRecord(kept[i])
		if err != nil {
			s.log.Warn("static: skipping store record", "record", kept[i], "err", err)
			continue
		}
		for name, f := range rec.Files {
			if manifestName(name) && len(f.SHA256) == 64 && isLowerHex(f.SHA256) {
				files[name] = f
			}
		}
	}
	return files, kept, nil
}

// content builds the content of a stored hashed file (identity + variants).
func (s *store) content(b *builder, name string, f storedFile) (*content, error) {
	c := &content{name: name, mtime: time.Unix(0, f.MTime), ctype: contentType(name)}
	if _, err := hex.Decode(c.sha[:], []byte(f.SHA256)); err != nil {
		return nil, err
	}
	base := s.objectsDir()
	codings := []coding{identity}
	for _, v := range f.Variants {
		if cd, ok := parseCoding(v); ok {
			codings = append(codings, cd)
		}
	}
	for _, cd := range codings {
		rel := objectName(f.SHA256, cd)
		data, err := os.ReadFile(filepath.Join(base, filepath.FromSlash(rel)))
		if err != nil {
			if cd == identity {
				return nil, err
			}
			continue
		}
		if cd == identity && sha256.Sum256(data) != c.sha {
			return nil, fmt.Errorf("static: store object %s is corrupt", rel)
		}
		// No mtime check when serving from disk: objects are immutable but
		// their mtime is touched to fend off GC.
		r := repContent{coding: cd, size: int64(len(data)), etag: etagOf(data), base: base, rel: rel}
		if b.keepInMemory(r.size) {
			r.data = data
		}
		c.reps = append(c.reps, r)
	}
	slices.SortStableFunc(c.reps[1:], func(x, y repContent) int { return int(x.size - y.size) })
	return c, nil
}

// writeAtomic writes data to p through a hidden temporary file and a rename.
func writeAtomic(p string, data []byte) error {
	dir, base := filepath.Split(p)
	tmp := filepath.Join(dir, "."+base+"."+strconv.FormatInt(time.Now().UnixNano(), 36)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func sortedValues(m map[string]string) []string {
	vs := make([]string, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}
