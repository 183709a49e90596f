package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestParseSessions(t *testing.T) {
	t.Parallel()
	base := []string{"--secret-key", "k", "--database", "postgres://x/y"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(*testing.T, *sessionsOpts)
	}{
		{name: "defaults", args: base, check: func(t *testing.T, o *sessionsOpts) {
			if o.engine != "db" || o.cookieName != "sessionid" || o.listen != "127.0.0.1:8081" || o.cookieAge != 1209600 {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "environment", env: map[string]string{"DJANGO_SECRET_KEY": "s", "DATABASE_URL": "postgres://a/b",
			"DJANGO_SECRET_KEY_FALLBACKS": "old1,old2", "DJANGO_SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies"},
			check: func(t *testing.T, o *sessionsOpts) {
				if o.secret != "s" || len(o.fallbacks) != 2 || o.fallbacks[1] != "old2" || o.engine != "django.contrib.sessions.backends.signed_cookies" {
					t.Errorf("from env: %+v", o)
				}
			}},
		{name: "fallbacks repeat", args: append([]string{"--secret-key-fallbacks", "a,b", "--secret-key-fallbacks", "c"}, base...),
			check: func(t *testing.T, o *sessionsOpts) {
				if o.fallbacks.String() != "a,b,c" {
					t.Errorf("fallbacks %v", o.fallbacks)
				}
			}},
		{name: "cache with redis", args: append([]string{"--engine", "cache", "--redis", "redis://127.0.0.1:6379/1", "--cookie-name", "sid"}, base...),
			check: func(t *testing.T, o *sessionsOpts) {
				if o.cookieName != "sid" || o.redisURL == "" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "no secret", args: []string{"--database", "postgres://x/y"}, wantErr: "--secret-key"},
		{name: "no database", args: []string{"--secret-key", "k"}, wantErr: "--database"},
		{name: "unknown engine", args: append([]string{"--engine", "file"}, base...), wantErr: "--engine"},
		{name: "cache without a cache", args: append([]string{"--engine", "cached_db"}, base...), wantErr: "--redis or --memcached"},
		{name: "two caches", args: append([]string{"--engine", "cache", "--redis", "redis://x", "--memcached", "x:1"}, base...), wantErr: "only"},
		{name: "bad cookie age", args: append([]string{"--cookie-age", "0"}, base...), wantErr: "--cookie-age"},
		{name: "bad serializer", args: append([]string{"--serializer", "yaml"}, base...), wantErr: "--serializer"},
		{name: "bad cache serializer", args: append([]string{"--cache-serializer", "msgpack"}, base...), wantErr: "--cache-serializer"},
		{name: "flag beats environment", args: base, env: map[string]string{"DJANGO_SECRET_KEY": "env"},
			check: func(t *testing.T, o *sessionsOpts) {
				if o.secret != "k" {
					t.Errorf("secret %q; want the flag's", o.secret)
				}
			}},
		{name: "bad log level", args: append([]string{"--log-level", "loud"}, base...), wantErr: "--log-level"},
		{name: "unknown flag", args: append([]string{"--nope"}, base...), wantErr: "usage"},
		{name: "stray argument", args: append(base, "extra"), wantErr: "usage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _, _ := testEnv(tc.env)
			o, err := parseSessions(e, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

// TestRunSessions starts the service against the real PostgreSQL and
// Redis, checks /healthz and /auth, and stops it by cancelling ctx.
func TestRunSessions(t *testing.T) {
	t.Parallel()
	pg := testenv.PostgresURL(t)
	rd := testenv.RedisURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	e, _, stderr := testEnv(map[string]string{"DJANGO_SECRET_KEY": "k", "DATABASE_URL": pg})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, e, []string{"sessions", "--listen", addr, "--engine", "cache", "--redis", rd,
			"--cache-key-prefix", testenv.Prefix(t)})
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for up := false; !up; {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			up = resp.StatusCode == 200
			continue
		}
		select {
		case err := <-done:
			t.Fatalf("exited early: %v\n%s", err, stderr)
		case <-deadline:
			t.Fatalf("not serving\n%s", stderr)
		case <-tick.C:
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/auth", nil)
	req.AddCookie(&http.Cookie{Name: "sessionid", Value: "nosuchsession0000000000000000000"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/auth with an unknown session: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop after ctx was cancelled")
	}
	if err := run(context.Background(), e, []string{"sessions", "--database", "postgres://127.0.0.1:1/none?connect_timeout=2"}); err == nil || !strings.Contains(err.Error(), "--database") {
		t.Fatalf("unreachable database: err = %v", err)
	}
}

// TestSessionsHelpHidesSecrets: -h prints flag defaults, so secrets must
// never be defaults.
func TestSessionsHelpHidesSecrets(t *testing.T) {
	t.Parallel()
	e, _, stderr := testEnv(map[string]string{"DJANGO_SECRET_KEY": "very-secret", "DATABASE_URL": "postgres://u:pw-secret@h/d"})
	_, _ = parseSessions(e, []string{"-h"})
	if out := stderr.String(); strings.Contains(out, "very-secret") || strings.Contains(out, "pw-secret") || !strings.Contains(out, "-secret-key") {
		t.Fatalf("help output leaks a secret or lacks the flags:\n%s", out)
	}
}
