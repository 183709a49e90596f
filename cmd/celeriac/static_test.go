package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/static"
)

func TestStaticFlags(t *testing.T) {
	t.Parallel()
	cfg, err := parseStaticFlags(quietEnv(nil), []string{
		"--root", "/srv/static", "--listen", ":9000", "--prefix", "/assets/", "--manifest", "m.json",
		"--keep-manifests", "5", "--store", "/var/cache/s", "--cors", "*", "--max-age", "0", "--index",
		"--variants", "memory", "--encodings", "br, gzip", "--reload", "poll", "--poll-interval", "5s",
		"--memory-file-limit", "1MiB", "--access-log",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := static.Config{Root: "/srv/static", Listen: ":9000", Prefix: "/assets/", Manifest: "m.json",
		KeepManifests: 5, Store: "/var/cache/s", CORS: "*", MaxAge: -1, IndexFile: "index.html",
		Variants: static.VariantsMemory, Encodings: []string{"br", "gzip"}, Reload: static.ReloadPoll,
		PollInterval: 5 * time.Second, MemoryFileLimit: 1 << 20}
	if got := cfg; got.Root != want.Root || got.Listen != want.Listen || got.Prefix != want.Prefix ||
		got.Manifest != want.Manifest || got.KeepManifests != want.KeepManifests || got.Store != want.Store ||
		got.CORS != want.CORS || got.MaxAge != want.MaxAge || got.IndexFile != want.IndexFile ||
		got.Variants != want.Variants || strings.Join(got.Encodings, ",") != "br,gzip" || got.Reload != want.Reload ||
		got.PollInterval != want.PollInterval || got.MemoryFileLimit != want.MemoryFileLimit || got.AccessLog == nil {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	cfg, err = parseStaticFlags(quietEnv(map[string]string{"CELERIAC_STATIC_ROOT": "/r", "CELERIAC_STATIC_LISTEN": ":1"}), nil)
	if err != nil || cfg.Root != "/r" || cfg.Listen != ":1" || cfg.Prefix != "/static/" || cfg.MaxAge != time.Minute {
		t.Errorf("from environment: %+v, %v", cfg, err)
	}
}

func TestStaticBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},                                 // no --root
		{"--root", "/r", "extra"},          // stray argument
		{"--root", "/r", "--bogus"},        // unknown flag
		{"--root", "/r", "--max-age", "x"}, // bad duration
	} {
		if _, err := parseStaticFlags(quietEnv(nil), args); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want usage error", args, err)
		}
	}
	if _, err := parseStaticFlags(quietEnv(nil), []string{"--root", "/r", "--memory-file-limit", "lots"}); err == nil {
		t.Errorf("bad size accepted")
	}
}

// TestStaticBadConfig: config the library refuses fails the command with
// the field named, before listening.
func TestStaticBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for flag, args := range map[string][]string{
		"Prefix":   {"--root", dir, "--prefix", "static"},
		"Variants": {"--root", dir, "--variants", "disk"},
		"Root":     {"--root", dir + "/missing"},
	} {
		err := runStatic(context.Background(), quietEnv(nil), append(args, "--listen", "127.0.0.1:0", "--keep-manifests", "1"))
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%s: err = %v", flag, err)
		}
	}
}

// TestStaticRuns starts the command and stops it by cancelling ctx, as the
// first SIGTERM does.
func TestStaticRuns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	e := quietEnv(nil)
	e.stderr = logs
	done := make(chan error, 1)
	go func() {
		done <- runStatic(ctx, e, []string{"--root", t.TempDir(), "--listen", "127.0.0.1:0", "--keep-manifests", "1"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "static: listening") {
		select {
		case err := <-done:
			t.Fatalf("runStatic returned early: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening:\n%s", logs.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runStatic: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runStatic did not stop")
	}
}

// quietEnv is an env that discards output.
func quietEnv(vars map[string]string) *env {
	e, _, _ := testEnv(vars)
	return e
}
