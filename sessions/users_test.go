package sessions

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5/pgxpool"
)

func usersDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	_, dsn := testDatabase(t)
	db, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	_, err = db.Exec(ctx, `INSERT INTO auth_user (id, password, is_active, username, first_name, last_name, email, is_staff, is_superuser, date_joined)
		VALUES (42, $1, true, 'alice', '', '', '', false, false, now()), (43, $1, false, 'bob', '', '', '', false, false, now())`, goldenPW)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func loginSession(id, backend, hash string) *Session {
	s := NewSession()
	s.Set(KeyUserID, id)
	s.Set(KeyUserBackend, backend)
	s.Set(KeyUserHash, hash)
	return s
}

func TestUsersCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := usersDB(t)
	users := func(cfg UsersConfig) *Users {
		cfg.DB = db
		if cfg.Keys.Current == nil {
			cfg.Keys.Current = []byte(goldenKey)
		}
		u, err := NewUsers(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	sha1Hash := hex.EncodeToString(signing.SaltedHMAC(signing.SHA1, authHashSalt, []byte(goldenKey), []byte(goldenPW)))
	tests := []struct {
		name  string
		users *Users
		s     *Session
		ok    bool
	}{
		{"golden", users(UsersConfig{}), loginSession("42", ModelBackend, goldenHash), true},
		{"fallback key", users(UsersConfig{Keys: signing.Keys{Current: []byte("new"), Fallbacks: [][]byte{[]byte(goldenKey)}}}), loginSession("42", ModelBackend, goldenHash), true},
		{"wrong key", users(UsersConfig{Keys: signing.Keys{Current: []byte("new")}}), loginSession("42", ModelBackend, goldenHash), false},
		{"tampered hash", users(UsersConfig{}), loginSession("42", ModelBackend, "0"+goldenHash[1:]), false},
		{"no hash", users(UsersConfig{}), loginSession("42", ModelBackend, ""), false},
		{"sha1 hash refused", users(UsersConfig{}), loginSession("42", ModelBackend, sha1Hash), false},
		{"sha1 hash with AcceptSHA1", users(UsersConfig{AcceptSHA1: true}), loginSession("42", ModelBackend, sha1Hash), true},
		{"backend not allowed", users(UsersConfig{}), loginSession("42", "my.Backend", goldenHash), false},
		{"backend allowed", users(UsersConfig{Backends: []string{"my.Backend"}}), loginSession("42", "my.Backend", goldenHash), true},
		{"inactive", users(UsersConfig{}), loginSession("43", ModelBackend, goldenHash), false},
		{"inactive via AllowAllUsersModelBackend", users(UsersConfig{Backends: []string{AllowAllUsersBackend}}), loginSession("43", AllowAllUsersBackend, goldenHash), true},
		{"missing user", users(UsersConfig{}), loginSession("44", ModelBackend, goldenHash), false},
		{"non-numeric id", users(UsersConfig{}), loginSession("abc", ModelBackend, goldenHash), false},
		{"huge id", users(UsersConfig{}), loginSession("99999999999999999999999", ModelBackend, goldenHash), false},
		{"anonymous", users(UsersConfig{}), NewSession(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.users.Check(ctx, tc.s)
			if tc.ok {
				if err != nil || u.ID == "" {
					t.Fatalf("Check = %+v, %v; want a user", u, err)
				}
				return
			}
			if !errors.Is(err, ErrAnonymous) {
				t.Fatalf("Check = %+v, %v; want ErrAnonymous", u, err)
			}
		})
	}
}

// TestUsersCacheTTL shows the documented trade-off: with a row cache, a
// password change is seen after the TTL or at once after Forget.
func TestUsersCacheTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := usersDB(t)
	now := time.Unix(goldenTime, 0)
	u, err := NewUsers(UsersConfig{DB: db, Keys: signing.Keys{Current: []byte(goldenKey)}, CacheTTL: 5 * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s := loginSession("42", ModelBackend, goldenHash)
	if _, err := u.Check(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "UPDATE auth_user SET password = 'changed' WHERE id = 42"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check(ctx, s); err != nil {
		t.Fatalf("within the TTL the cached row should still be used: %v", err)
	}
	now = now.Add(5 * time.Second)
	if _, err := u.Check(ctx, s); !errors.Is(err, ErrAnonymous) {
		t.Fatalf("after the TTL the password change must be seen: %v", err)
	}
	if _, err := db.Exec(ctx, "UPDATE auth_user SET password = $1 WHERE id = 42", goldenPW); err != nil {
		t.Fatal(err)
	}
	u.Forget("42")
	if _, err := u.Check(ctx, s); err != nil {
		t.Fatalf("Forget did not drop the cached row: %v", err)
	}
}

func TestNewUsersRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewUsers(UsersConfig{Keys: signing.Keys{Current: []byte("k")}}); !errors.Is(err, ErrConfig) {
		t.Errorf("no DB: %v", err)
	}
	if _, err := NewUsers(UsersConfig{DB: &pgxpool.Pool{}}); !errors.Is(err, ErrConfig) {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewUsers(UsersConfig{DB: &pgxpool.Pool{}, Keys: signing.Keys{Current: []byte("k")}, CacheTTL: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("negative TTL: %v", err)
	}
}
