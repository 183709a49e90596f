package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/celeriac/celeriac/static"
)

func init() {
	register("static", "serve Django's collected static files, compressed and cached", runStatic)
}

// staticShutdownGrace bounds how long in-flight responses may take to finish.
const staticShutdownGrace = 30 * time.Second

func runStatic(ctx context.Context, e *env, args []string) error {
	cfg, err := parseStaticFlags(e, args)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	s, err := static.New(ctx, cfg)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	cfg.Logger.Info("static: listening", "addr", s.Addr().String(), "prefix", cfg.Prefix)

	// SIGHUP rescans at once, for deploy scripts that want it explicit.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if err := s.Reload(ctx); err != nil {
				cfg.Logger.Warn("static: reload failed", "err", err)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), staticShutdownGrace)
	defer cancel()
	return s.Shutdown(sctx)
}

// parseStaticFlags turns the command line (and CELERIAC_STATIC_* variables)
// into a static.Config.
func parseStaticFlags(e *env, args []string) (static.Config, error) {
	fs := newFlagSet(e, "static", "--root DIR [--listen ADDR] [--prefix /static/] [flags]")
	root := fs.String("root", e.getenv("CELERIAC_STATIC_ROOT"), "directory to serve: Django's STATIC_ROOT (env CELERIAC_STATIC_ROOT)")
	listen := fs.String("listen", e.envOr("CELERIAC_STATIC_LISTEN", "127.0.0.1:8080"), "address to listen on (env CELERIAC_STATIC_LISTEN)")
	prefix := fs.String("prefix", e.envOr("CELERIAC_STATIC_PREFIX", "/static/"), "URL path the root is served under: STATIC_URL's path (env CELERIAC_STATIC_PREFIX)")
	manifest := fs.String("manifest", e.getenv("CELERIAC_STATIC_MANIFEST"), "Django's manifest, relative to --root or absolute; given explicitly it must exist (default staticfiles.json, optional)")
	keep := fs.Int("keep-manifests", 3, "keep the hashed files of the last N manifests servable across deploys (1 = current only)")
	store := fs.String("store", e.getenv("CELERIAC_STATIC_STORE"), "directory keeping hashed files of past manifests; may be shared by instances (default: under the user cache dir)")
	cors := fs.String("cors", e.getenv("CELERIAC_STATIC_CORS"), "Access-Control-Allow-Origin value to send, e.g. '*'")
	maxAge := fs.Duration("max-age", 60*time.Second, "Cache-Control max-age for files that are not hashed manifest names (0 = no-cache)")
	index := fs.Bool("index", false, "serve index.html for directory paths ending in '/'")
	variants := fs.String("variants", string(static.VariantsAuto), "where created .br/.zst/.gz variants go: auto (next to originals if writable, else memory), memory, existing (create none)")
	encodings := fs.String("encodings", "br,zstd,gzip", "codings to create variants for")
	reload := fs.String("reload", string(static.ReloadWatch), "how changes on disk are picked up: watch (inotify, falls back to poll), poll, off (SIGHUP only)")
	poll := fs.Duration("poll-interval", 2*time.Second, "rescan period for --reload=poll")
	accessLog := fs.Bool("access-log", false, "log every request (method, path, status, encoding, bytes) to stdout")
	memLimit := fs.String("memory-file-limit", "256KiB", "files up to this size are served from memory, larger ones with sendfile")
	if err := parseFlags(fs, args); err != nil {
		return static.Config{}, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "celeriac static: unexpected argument %q\n", fs.Arg(0))
		return static.Config{}, errUsage
	}
	if *root == "" {
		fmt.Fprintln(e.stderr, "celeriac static: --root is required")
		return static.Config{}, errUsage
	}
	limit, err := parseSize(*memLimit)
	if err != nil {
		return static.Config{}, fmt.Errorf("--memory-file-limit: %w", err)
	}
	if limit == 0 {
		limit = -1
	}
	cfg := static.Config{
		Root: *root, Listen: *listen, Prefix: *prefix, Manifest: *manifest,
		KeepManifests: *keep, Store: *store, CORS: *cors, MaxAge: *maxAge,
		Variants: static.VariantMode(*variants), Reload: static.ReloadMode(*reload),
		PollInterval: *poll, MemoryFileLimit: limit,
	}
	if *keep == 0 {
		return cfg, fmt.Errorf("--keep-manifests: must be at least 1")
	}
	if *maxAge == 0 {
		cfg.MaxAge = -1 // Config: negative means no-cache
	}
	if *accessLog {
		cfg.AccessLog = slog.New(slog.NewTextHandler(e.stdout, nil))
	}
	if *index {
		cfg.IndexFile = "index.html"
	}
	cfg.Encodings = []string{}
	for _, enc := range strings.Split(*encodings, ",") {
		if enc = strings.TrimSpace(enc); enc != "" {
			cfg.Encodings = append(cfg.Encodings, enc)
		}
	}
	return cfg, nil
}

// parseSize reads "262144", "256KiB", "4MiB".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
