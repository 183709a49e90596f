package static

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	debounceQuiet = 100 * time.Millisecond // rescan once events stop for this long…
	debounceMax   = time.Second            // …or this long after the first one
)

// watch keeps the index current until ctx ends.
func (s *Server) watch(ctx context.Context) {
	if s.cfg.Reload == ReloadWatch {
		err := s.watchNotify(ctx)
		if err == nil {
			return
		}
		s.log.Warn("static: cannot watch the root; polling instead", "err", err, "every", s.cfg.PollInterval)
	}
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reloadLogged(ctx)
		}
	}
}

func (s *Server) reloadLogged(ctx context.Context) {
	if err := s.Reload(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("static: reload failed", "err", err)
	}
}

// watchNotify watches every directory of the root (and the store's
// records, where other instances announce releases) with inotify and
// rescans shortly after changes settle. It returns nil when ctx ends, or
// an error if watching cannot be set up (inotify limits, unsupported file
// system), in which case the caller polls.
func (s *Server) watchNotify(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := addTree(w, s.cfg.Root); err != nil {
		return err
	}
	if s.store != nil {
		if err := w.Add(filepath.Join(s.store.dir, "records")); err != nil {
			return err
		}
	}
	if filepath.IsAbs(s.manifestPath) && !inside(s.cfg.Root, s.manifestPath) {
		if err := w.Add(filepath.Dir(s.manifestPath)); err != nil {
			return err
		}
	}
	// Changes between New's scan and the watches being in place.
	s.reloadLogged(ctx)

	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	var first time.Time
	for {
		select {
		case <-ctx.Done():
			quiet.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if strings.HasPrefix(filepath.Base(ev.Name), ".") {
				continue // our own temporary files, editors' swap files
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					_ = addTree(w, ev.Name)
				}
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			quiet.Reset(min(debounceQuiet, max(0, debounceMax-now.Sub(first))))
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("static: watch error; rescanning", "err", err)
			quiet.Reset(debounceQuiet)
		case <-quiet.C:
			first = time.Time{}
			s.reloadLogged(ctx)
		}
	}
}

// addTree watches dir and every non-hidden directory below it.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return nil
	})
}
