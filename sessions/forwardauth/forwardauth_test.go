package forwardauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/sessions"
	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret   = "forward-auth-test-secret"
	password = "pbkdf2_sha256$260000$fixedsalt0123456$HCIvcPLzvwxKKeUeKdIRQQTd4nf/ljpXdXiFA6zx1SU="
)

var keys = signing.Keys{Current: []byte(secret)}

// userDB makes a database of this test's own with a minimal auth_user.
func userDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	base := testenv.PostgresURL(t)
	name := testenv.Prefix(t)
	admin := func(sql string) {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	admin("CREATE DATABASE " + name)
	t.Cleanup(func() { admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, _ := url.Parse(base)
	u.Path = "/" + name
	db, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Exec(ctx, `CREATE TABLE auth_user (id serial PRIMARY KEY, password varchar(128) NOT NULL, is_active boolean NOT NULL);
		INSERT INTO auth_user VALUES (42, '`+password+`', true)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func authHash(pw string) string {
	return hex.EncodeToString(signing.SaltedHMAC(signing.SHA256,
		"django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash", []byte(secret), []byte(pw)))
}

// loginCookie makes a signed_cookies session for user 42, as Django's
// login() would leave it.
func loginCookie(t *testing.T, store sessions.Store, hash string) string {
	t.Helper()
	s := sessions.NewSession()
	s.Set(sessions.KeyUserID, "42")
	s.Set(sessions.KeyUserBackend, sessions.ModelBackend)
	s.Set(sessions.KeyUserHash, hash)
	if err := store.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s.Key()
}

func newServer(t *testing.T, db *pgxpool.Pool) (*Server, sessions.Store) {
	t.Helper()
	store, err := sessions.NewStore(sessions.Config{Engine: sessions.EngineSignedCookies, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	users, err := sessions.NewUsers(sessions.UsersConfig{DB: db, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", Store: store, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	return srv, store
}

func TestAuth(t *testing.T) {
	t.Parallel()
	db := userDB(t)
	srv, store := newServer(t, db)
	good := loginCookie(t, store, authHash(password))
	stale := loginCookie(t, store, authHash("an older password"))
	sum := sha256.Sum256([]byte(good))
	tests := []struct {
		name     string
		path     string
		cookie   string
		wantCode int
		wantUser string
	}{
		{"logged in", "/auth", good, 200, "42"},
		{"no cookie", "/auth", "", 401, ""},
		{"tampered", "/auth", good[:len(good)-2] + "xx", 401, ""},
		{"password changed", "/auth", stale, 401, ""},
		{"health", "/healthz", "", 200, ""},
		{"unknown path", "/other", good, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "sessionid", Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || rec.Header().Get("X-User-Id") != tc.wantUser {
				t.Fatalf("got %d user %q; want %d user %q", rec.Code, rec.Header().Get("X-User-Id"), tc.wantCode, tc.wantUser)
			}
			if tc.wantUser != "" && rec.Header().Get("X-Session-Hash") != hex.EncodeToString(sum[:]) {
				t.Fatalf("X-Session-Hash %q", rec.Header().Get("X-Session-Hash"))
			}
		})
	}
	// The database goes away: an outage is a 503, never a 200 or a 401.
	db.Close()
	req := httptest.NewRequest("GET", "/auth", nil)
	req.AddCookie(&http.Cookie{Name: "sessionid", Value: good})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("database down: got %d; want 503", rec.Code)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, &pgxpool.Pool{})
	ctx := context.Background()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown before Start: %v", err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	resp, err := http.Get("http://" + srv.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		t.Fatal("still listening after Shutdown")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v", err)
	}
	store, _ := sessions.NewStore(sessions.Config{Engine: sessions.EngineSignedCookies, Keys: keys})
	if _, err := New(Config{Store: store}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no users: err = %v", err)
	}
}
