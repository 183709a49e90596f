package static

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Errors returned by the package. Configuration errors wrap ErrConfig and
// are *ConfigError values naming the field.
var (
	ErrConfig      = errors.New("static: invalid config")
	ErrBadManifest = errors.New("static: bad manifest")
	ErrClosed      = errors.New("static: server closed")
	ErrStarted     = errors.New("static: already started")
)

// ConfigError names the Config field that is wrong.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("static: invalid config: %s: %s", e.Field, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// VariantMode says where precompressed variants created at start-up go.
type VariantMode string

const (
	// VariantsAuto writes variants next to their originals (x.css.br,
	// x.css.zst, x.css.gz) when the directory is writable, so the work is
	// done once and survives restarts; where it is not, they are kept in
	// memory. This is the default.
	VariantsAuto VariantMode = "auto"
	// VariantsMemory never writes to the root: created variants live in memory.
	VariantsMemory VariantMode = "memory"
	// VariantsExisting creates nothing and serves only sibling variants
	// already on disk (made by WhiteNoise, gzip -k, a build step…).
	VariantsExisting VariantMode = "existing"
)

// ReloadMode says how changes on disk are picked up.
type ReloadMode string

const (
	// ReloadWatch uses inotify (fsnotify) on every directory of the root and
	// falls back to polling if watches cannot be set up. The default.
	ReloadWatch ReloadMode = "watch"
	// ReloadPoll re-scans the root every PollInterval; use it on network
	// file systems and for roots swapped by renaming a symlink.
	ReloadPoll ReloadMode = "poll"
	// ReloadOff only re-scans when Reload is called.
	ReloadOff ReloadMode = "off"
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Root is the directory served (Django's STATIC_ROOT). Required.
	Root string
	// Listen is the TCP address Start listens on ("127.0.0.1:8080"). Leave
	// it empty to use the Server only as an http.Handler.
	Listen string
	// Prefix is the URL path the root is served under; it must start and end
	// with '/'. Default "/".
	Prefix string
	// Manifest is the path of Django's staticfiles.json, relative to Root or
	// absolute. Default "staticfiles.json", which may be absent; a Manifest
	// set explicitly must exist at start-up.
	Manifest string
	// KeepManifests is how many manifests' hashed files stay servable: the
	// current one and the KeepManifests-1 before it, kept in Store so that
	// pages of the previous release find their assets during a rolling
	// deploy. 1 keeps only the current files. Default 3.
	KeepManifests int
	// Store is the directory where hashed files of past manifests are kept,
	// content-addressed; several instances may share it. Default: a
	// directory per root under the user's cache directory. It must not be
	// inside Root (collectstatic --clear would empty it).
	Store string
	// MaxAge is the Cache-Control max-age of files that are not hashed names
	// of a manifest. Default 60s; negative sends "no-cache" (always revalidate).
	MaxAge time.Duration
	// CORS, if set, is sent as Access-Control-Allow-Origin on every file
	// (for fonts and module scripts served from a CDN host), e.g. "*".
	CORS string
	// IndexFile, if set (e.g. "index.html"), is served for a directory path
	// ending in '/'; the path without the slash redirects to it.
	IndexFile string
	// Variants says where precompressed variants made at start-up go.
	// Default VariantsAuto.
	Variants VariantMode
	// Encodings are the codings to create variants for, from "br", "zstd"
	// and "gzip". Default all three. Existing siblings of any of the three
	// are served whatever this says.
	Encodings []string
	// Reload says how file changes are picked up. Default ReloadWatch.
	Reload ReloadMode
	// PollInterval is the re-scan period for ReloadPoll, and the fallback
	// when watching fails. Default 2s.
	PollInterval time.Duration
	// MemoryFileLimit: files and variants up to this size are held in
	// memory and written from there; larger ones are sent from disk with
	// sendfile. Default 256 KiB; negative keeps nothing in memory.
	MemoryFileLimit int64
	// MemoryBudget caps the bytes held in memory for small files; once it is
	// spent the rest is served from disk. Default 256 MiB.
	MemoryBudget int64
	// Logger receives start-up, reload and error reports. Nil discards them.
	Logger *slog.Logger
	// AccessLog, if set, gets one Info record per request: method, path,
	// status, encoding, bytes, Cache-Control and the request's
	// Accept-Encoding. Nil (the
	// default) logs nothing and costs nothing.
	AccessLog *slog.Logger
}

// withDefaults validates c and returns a copy with defaults applied.
func (c Config) withDefaults() (Config, error) {
	bad := func(field, format string, args ...any) (Config, error) {
		return c, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.Root == "" {
		return bad("Root", "required")
	}
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return bad("Root", "%v", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return bad("Root", "%v", err)
	} else if !fi.IsDir() {
		return bad("Root", "%s is not a directory", root)
	}
	c.Root = root
	if c.Prefix == "" {
		c.Prefix = "/"
	}
	if !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") {
		return bad("Prefix", "%q must start and end with '/'", c.Prefix)
	}
	if c.Prefix != "/" {
		if _, _, v := resolvePath("/", c.Prefix, c.Prefix); v != pathOK {
			return bad("Prefix", "%q is not a clean path", c.Prefix)
		}
	}
	if c.KeepManifests == 0 {
		c.KeepManifests = 3
	}
	if c.KeepManifests < 0 {
		return bad("KeepManifests", "%d is negative", c.KeepManifests)
	}
	if c.Store != "" {
		st, err := filepath.Abs(c.Store)
		if err != nil {
			return bad("Store", "%v", err)
		}
		if inside(c.Root, st) {
			return bad("Store", "%s is inside Root; collectstatic --clear would delete it", st)
		}
		c.Store = st
	}
	if c.MaxAge == 0 {
		c.MaxAge = 60 * time.Second
	}
	if strings.ContainsAny(c.CORS, "\r\n") {
		return bad("CORS", "contains a line break")
	}
	if c.IndexFile != "" && (strings.ContainsAny(c.IndexFile, "/\\") || strings.HasPrefix(c.IndexFile, ".")) {
		return bad("IndexFile", "%q must be a plain file name", c.IndexFile)
	}
	switch c.Variants {
	case "":
		c.Variants = VariantsAuto
	case VariantsAuto, VariantsMemory, VariantsExisting:
	default:
		return bad("Variants", "%q is not auto, memory or existing", c.Variants)
	}
	if c.Encodings == nil {
		c.Encodings = []string{"br", "zstd", "gzip"}
	}
	for _, e := range c.Encodings {
		if _, ok := parseCoding(e); !ok {
			return bad("Encodings", "%q is not br, zstd or gzip", e)
		}
	}
	c.Encodings = slices.Clone(c.Encodings)
	switch c.Reload {
	case "":
		c.Reload = ReloadWatch
	case ReloadWatch, ReloadPoll, ReloadOff:
	default:
		return bad("Reload", "%q is not watch, poll or off", c.Reload)
	}
	if c.PollInterval == 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.PollInterval < 10*time.Millisecond {
		return bad("PollInterval", "%v is below 10ms", c.PollInterval)
	}
	if c.MemoryFileLimit == 0 {
		c.MemoryFileLimit = 256 << 10
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = 256 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// inside reports whether path p is dir or below it.
func inside(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
