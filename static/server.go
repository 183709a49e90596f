package static

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves a directory of static files. It is an http.Handler; with
// Config.Listen set, Start also runs its own listener with a fast path for
// plain GET/HEAD requests.
type Server struct {
	cfg          Config
	log          *slog.Logger
	manifestPath string
	manifestReq  bool
	cacheShort   string
	store        *store // nil: only the current manifest's files are served

	idx        atomic.Pointer[index]
	reloadMu   sync.Mutex
	storeCheck atomic.Int64 // unix ns of the last miss-triggered store look

	mu      sync.Mutex
	state   int // 0 new, 1 started, 2 closed
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ln      net.Listener
	httpSrv *http.Server
	fast    *fastServer
}

// index is one immutable view of the root; requests load it atomically.
type index struct {
	files    map[string]*file
	contents map[string]*content // scanned from the root, reused by the next scan
	stored   map[string]*content // from the store, reused while the object is the same
	manifest *Manifest
	digest   string   // of the manifest bytes
	kept     []string // store records in use
}

// New checks cfg, scans the root, creates missing compressed variants (in
// parallel) and records the manifest in the store. It returns once the
// Server can answer requests.
func New(ctx context.Context, cfg Config) (*Server, error) {
	manifestReq := cfg.Manifest != ""
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, manifestReq: manifestReq, cacheShort: cacheControlFor(cfg.MaxAge)}
	s.manifestPath = cfg.Manifest
	if s.manifestPath == "" {
		s.manifestPath = "staticfiles.json"
	}
	if cfg.KeepManifests > 1 {
		dir, explicit := cfg.Store, cfg.Store != ""
		if !explicit {
			dir, err = defaultStoreDir(cfg.Root)
		}
		if err == nil {
			s.store, err = openStore(dir, cfg.KeepManifests, s.log)
		}
		switch {
		case err != nil && explicit:
			return nil, &ConfigError{Field: "Store", Reason: err.Error()}
		case err != nil:
			s.log.Warn("static: no store for past manifests; only the current one is served", "err", err)
		}
	}
	start := time.Now()
	if _, err := s.build(ctx, true); err != nil {
		return nil, err
	}
	idx := s.idx.Load()
	var mem int64
	for _, f := range idx.files {
		for _, r := range f.reps {
			mem += int64(len(r.data))
		}
	}
	s.log.Info("static: ready", "root", cfg.Root, "files", len(idx.files), "memory_bytes", mem,
		"took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// Reload re-scans the root now. Unchanged files are not re-read.
func (s *Server) Reload(ctx context.Context) error {
	_, err := s.build(ctx, false)
	return err
}

// build makes a new index and publishes it. first is the start-up build,
// where a bad or missing required manifest is an error; later it only
// logs and keeps the previous manifest (collectstatic may be mid-write).
func (s *Server) build(ctx context.Context, first bool) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.idx.Load()
	if prev == nil {
		prev = &index{}
	}
	root, err := os.OpenRoot(s.cfg.Root)
	if err != nil {
		return false, fmt.Errorf("static: open root: %w", err)
	}
	defer root.Close()
	b := &builder{cfg: &s.cfg, log: s.log, root: root, prev: prev.contents}
	contents, err := b.scan(ctx)
	if err != nil {
		return false, fmt.Errorf("static: scan %s: %w", s.cfg.Root, err)
	}

	next := &index{contents: contents, manifest: prev.manifest, digest: prev.digest, stored: map[string]*content{}}
	mbytes, err := s.readManifest(root)
	switch {
	case err == nil:
		m, perr := ParseManifest(mbytes)
		if perr != nil {
			if first {
				return false, fmt.Errorf("static: %s: %w", s.manifestPath, perr)
			}
			s.log.Warn("static: keeping previous manifest", "manifest", s.manifestPath, "err", perr)
			break
		}
		if len(m.Skipped) > 0 {
			s.log.Warn("static: manifest entries not served", "entries", m.Skipped)
		}
		sum := sha256.Sum256(mbytes)
		next.manifest, next.digest = m, hex.EncodeToString(sum[:])
		if s.store != nil {
			if err := s.store.snapshot(ctx, contents, mbytes, m); err != nil {
				s.log.Warn("static: cannot record manifest in store", "err", err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		if first && s.manifestReq {
			return false, &ConfigError{Field: "Manifest", Reason: err.Error()}
		}
		next.manifest, next.digest = nil, ""
	default:
		if first {
			return false, fmt.Errorf("static: read manifest: %w", err)
		}
		s.log.Warn("static: keeping previous manifest", "manifest", s.manifestPath, "err", err)
	}

	var storedFiles map[string]storedFile
	if s.store != nil {
		storedFiles, next.kept, err = s.store.load()
		if err != nil {
			s.log.Warn("static: cannot read store", "err", err)
		}
	}

	changed = len(contents) != len(prev.contents) || next.digest != prev.digest || !slices.Equal(next.kept, prev.kept)
	for name, c := range contents {
		if prev.contents[name] != c {
			changed = true
			break
		}
	}
	if !changed && !first {
		return false, nil
	}

	hashed := map[string]bool{}
	if next.manifest != nil {
		for _, v := range next.manifest.Paths {
			hashed[v] = true
		}
	}
	next.files = make(map[string]*file, len(contents)+len(storedFiles))
	for name, sf := range storedFiles {
		hashed[name] = true
		if _, onDisk := contents[name]; onDisk {
			continue
		}
		c := prev.stored[name]
		if c == nil || c.reps[0].etag == "" || hex.EncodeToString(c.sha[:]) != sf.SHA256 {
			if c, err = s.store.content(b, name, sf); err != nil {
				s.log.Warn("static: skipping stored file", "file", name, "err", err)
				continue
			}
		}
		next.stored[name] = c
		next.files[name] = s.decorate(c, true, true)
	}
	for name, c := range contents {
		next.files[name] = s.decorate(c, hashed[name], false)
	}
	s.idx.Store(next)
	if !first {
		s.log.Info("static: reloaded", "files", len(next.files))
	}
	return true, nil
}

func (s *Server) readManifest(root *os.Root) ([]byte, error) {
	if filepath.IsAbs(s.manifestPath) {
		return os.ReadFile(s.manifestPath)
	}
	return root.ReadFile(filepath.ToSlash(s.manifestPath))
}

// storeMayHave re-reads the store after a miss on a hashed-looking name, at
// most once a second: another instance sharing the store may have recorded
// a newer release whose pages are already asking this one for assets.
func (s *Server) storeMayHave(ctx context.Context) bool {
	if s.store == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := s.storeCheck.Load()
	if now-last < int64(time.Second) || !s.storeCheck.CompareAndSwap(last, now) {
		return false
	}
	names, err := s.store.records()
	if err != nil || slices.Equal(s.store.kept(names), s.idx.Load().kept) {
		return false
	}
	changed, err := s.build(ctx, false)
	return err == nil && changed
}

// Start runs the change watcher and, if Config.Listen is set, the
// listener. It returns once listening; serving stops with Shutdown.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case 1:
		return ErrStarted
	case 2:
		return ErrClosed
	}
	if s.cfg.Listen != "" {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("static: listen: %w", err)
		}
		s.ln = ln
	}
	s.state = 1
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.cfg.Reload != ReloadOff {
		s.wg.Go(func() { s.watch(bg) })
	}
	if s.ln != nil {
		s.startServing(bg)
	}
	return nil
}

// Addr is the listening address, or nil before Start or without Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops listening, lets responses in progress finish, closes idle
// connections and stops the watcher. If ctx ends first, the remaining
// connections are closed and ctx's error returned. Later calls return ErrClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.state == 2 {
		s.mu.Unlock()
		return ErrClosed
	}
	wasStarted := s.state == 1
	s.state = 2
	s.mu.Unlock()
	if !wasStarted {
		return nil
	}
	var err error
	if s.ln != nil {
		err = s.stopServing(ctx)
	}
	s.cancel()
	s.wg.Wait()
	return err
}
