package dbproxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestReadUserlist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.txt")
	body := "; comment\n\"alice\" \"pw\"\n\"bo\"\"b\" \"md5abc\" \"extra\"\n\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readUserlist(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"alice": "pw", `bo"b`: "md5abc"}, got); diff != "" {
		t.Error(diff)
	}
	for _, bad := range []string{"alice pw\n", "\"alice\n", "\"alice\"\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readUserlist(path); err == nil {
			t.Errorf("readUserlist(%q) accepted", bad)
		}
	}
}

func FuzzQuotedFields(f *testing.F) {
	for _, s := range []string{`"a" "b"`, `"a""b" "c"`, `"`, `a`, `"a"x`, `""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fields, err := quotedFields(line)
		if err != nil {
			return
		}
		// Quoting the fields again gives a line that reads back the same.
		var b strings.Builder
		for _, fl := range fields {
			b.WriteString(`"` + strings.ReplaceAll(fl, `"`, `""`) + `" `)
		}
		again, err := quotedFields(b.String())
		if err != nil || !slices.Equal(again, fields) {
			t.Fatalf("%q -> %q -> %q, %v", line, fields, again, err)
		}
	})
}

func FuzzParseSCRAM(f *testing.F) {
	s, _ := SCRAMSecret("pw")
	f.Add(s)
	f.Add("SCRAM-SHA-256$4096:$:")
	f.Fuzz(func(t *testing.T, in string) {
		if sec, ok := parseSCRAM(in); ok && sec.iter <= 0 {
			t.Errorf("accepted iteration count %d", sec.iter)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no_primary", Config{AuthType: AuthTrust}, "Primary"},
		{"bad_primary", Config{Primary: "postgres://%zz", AuthType: AuthTrust}, "Primary"},
		{"bad_replica", Config{Primary: "postgres://h/db", Replicas: []string{"postgres://%zz"}, AuthType: AuthTrust}, "Replicas[0]"},
		{"pool_mode", Config{Primary: "postgres://h/db", PoolMode: "statement", AuthType: AuthTrust}, "PoolMode"},
		{"auth_without_file", Config{Primary: "postgres://h/db"}, "AuthFile"},
		{"auth_type", Config{Primary: "postgres://h/db", AuthType: "any"}, "AuthType"},
		{"missing_file", Config{Primary: "postgres://h/db", AuthFile: "/nonexistent"}, "AuthFile"},
		{"min_idle", Config{Primary: "postgres://h/db", AuthType: AuthTrust, PoolSize: 2, MinIdle: 3}, "MinIdle"},
		{"tls_half", Config{Primary: "postgres://h/db", AuthType: AuthTrust, TLSCert: "c.pem"}, "TLSCert"},
		{"session_split", Config{Primary: "postgres://h/db", Replicas: []string{"postgres://r/db"}, PoolMode: PoolSession, AuthType: AuthTrust}, "Replicas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("New: %v, want ErrConfig naming %s", err, tc.field)
			}
		})
	}
	p, err := New(Config{Primary: "postgres://h/db", AuthType: AuthTrust})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.PoolSize != 20 || p.cfg.PoolMode != PoolTransaction || p.cfg.Listen != "127.0.0.1:6432" {
		t.Errorf("defaults not applied: %+v", p.cfg)
	}
}

// TestAuth logs in through the proxy with each kind of stored secret, and
// checks that wrong passwords and unknown users are refused. The server
// side of the proxy logs in with SCRAM or md5 as the test cluster demands.
func TestAuth(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	appSecret, err := SCRAMSecret("app-pw")
	if err != nil {
		t.Fatal(err)
	}
	file := userlist(t,
		`"scram_user" "scram-pw"`, // plain: SCRAM towards the client and the server
		`"md5_user" "md5-pw"`,
		`"app" "`+appSecret+`"`, // verifier only: the server trusts app
		`"postgres" "`+md5Secret("postgres", "pg-pw")+`"`,
	)
	for _, authType := range []string{AuthSCRAM, AuthMD5} {
		t.Run(authType, func(t *testing.T) {
			p := startProxy(t, Config{Primary: cl.primary.url("postgres", "", "postgres"), AuthFile: file, AuthType: authType})
			tests := []struct {
				user, password string
				ok             bool
			}{
				{"scram_user", "scram-pw", true},
				{"md5_user", "md5-pw", true},
				{"app", "app-pw", true},
				{"postgres", "pg-pw", true},
				{"scram_user", "wrong", false},
				{"app", "wrong", false},
				{"postgres", "wrong", false},
				{"nobody", "x", false},
			}
			for _, tc := range tests {
				t.Run(tc.user+"/"+tc.password, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := pgx.Connect(ctx, proxyURL(p, tc.user, tc.password, "postgres"))
					if !tc.ok {
						var pe *pgconn.PgError
						if err == nil {
							c.Close(ctx)
							t.Fatal("login accepted")
						}
						if !errors.As(err, &pe) || pe.Code != "28P01" {
							t.Fatalf("login error %v, want SQLSTATE 28P01", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close(ctx)
					var user string
					if err := c.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
						t.Fatal(err)
					}
					if user != tc.user {
						t.Errorf("server session user %q, want %q", user, tc.user)
					}
				})
			}
		})
	}
	t.Run("auth_query", func(t *testing.T) {
		p := startProxy(t, Config{Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthSCRAM,
			AuthQuery: "SELECT rolname::text, rolpassword FROM pg_authid WHERE rolname = $1"})
		ctx := context.Background()
		c, err := pgx.Connect(ctx, proxyURL(p, "aq_user", "aq-pw", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
		// The server demands SCRAM (or md5) of these users and the proxy
		// knows only the stored verifier: it logs in with the ClientKey the
		// client's own SCRAM proof revealed, or with the md5 hash.
		for _, u := range []struct{ user, pw string }{{"scram_user", "scram-pw"}, {"md5_user", "md5-pw"}} {
			c, err := pgx.Connect(ctx, proxyURL(p, u.user, u.pw, "postgres"))
			if err != nil {
				t.Fatalf("%s via auth_query: %v", u.user, err)
			}
			var who string
			if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != u.user {
				t.Fatalf("%s: current_user %q, %v", u.user, who, err)
			}
			c.Close(ctx)
		}
		if _, err := pgx.Connect(ctx, proxyURL(p, "aq_user", "wrong", "postgres")); err == nil {
			t.Fatal("wrong password accepted via auth_query")
		}
	})
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/16B3748", "FFFFFFFF/FFFFFFFF", "0/0", "/", "1/", "x/1", "100000000/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lsn, ok := parseLSN(s)
		if !ok {
			return
		}
		if back, ok := parseLSN(formatLSN(lsn)); !ok || back != lsn {
			t.Fatalf("%q -> %d -> %q -> %d", s, lsn, formatLSN(lsn), back)
		}
	})
}
