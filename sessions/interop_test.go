package sessions

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/google/go-cmp/cmp"
)

// TestDjangoInterop runs the real Django 3.2 against each session engine:
// Django logs a user in, Go reads the session and validates the login, Go
// writes values that Django reads back and vice versa, and a password
// change or deactivation in Django makes Go reject the session.
func TestDjangoInterop(t *testing.T) {
	t.Parallel()
	variants := []struct {
		name, engine, cache string
		serializer          Serializer
		expiryMinutes       string // a datetime _session_expiry (pickle only)
		env                 []string
	}{
		{name: "signed_cookies", engine: "signed_cookies", cache: "locmem"},
		{name: "db", engine: "db", cache: "locmem"},
		{name: "db_pickle", engine: "db", cache: "locmem", serializer: SerializerPickle, expiryMinutes: "90",
			env: []string{"DJ_SESSION_SERIALIZER=pickle"}},
		{name: "cache_redis_pickle", engine: "cache", cache: "redis", expiryMinutes: "90"},
		{name: "cache_redis_json", engine: "cache", cache: "redis-json"},
		{name: "cache_memcached", engine: "cache", cache: "memcached", expiryMinutes: "90"},
		{name: "cached_db_redis", engine: "cached_db", cache: "redis"},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dj := newDjango(t, v.engine, v.cache, v.env...)
			cfg := Config{Engine: Engine(v.engine), Keys: signing.Keys{Current: []byte(testSecret)},
				Serializer: v.serializer, DB: dj.pool()}
			switch v.cache {
			case "redis":
				cfg.Cache = dj.redisCache(CachePickle)
			case "redis-json":
				cfg.Cache = dj.redisCache(CacheJSON)
			case "memcached":
				cfg.Cache = dj.memcachedCache()
			}
			store, err := NewStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			users, err := NewUsers(UsersConfig{DB: cfg.DB, Keys: cfg.Keys})
			if err != nil {
				t.Fatal(err)
			}

			added := dj.run("adduser", "alice", "pw-one")
			wantID := fmt.Sprint(added["user_id"])
			loginArgs := []string{"login", "alice", "pw-one"}
			if v.expiryMinutes != "" {
				loginArgs = append(loginArgs, v.expiryMinutes)
			}
			cookie := dj.run(loginArgs...)["cookie"].(string)

			// Django's login → Go reads the session and validates the user.
			s, err := store.Load(ctx, cookie)
			if err != nil {
				t.Fatal(err)
			}
			u, err := users.Check(ctx, s)
			if err != nil || u.ID != wantID || u.Backend != ModelBackend {
				t.Fatalf("Check = %+v, %v; want user %s", u, err, wantID)
			}
			cart, _ := s.Get("cart")
			if d := cmp.Diff([]any{"Zoë ☃", int64(3), 2.5, true, nil}, cart); d != "" {
				t.Errorf("cart from Django (-want +got):\n%s", d)
			}
			if v.expiryMinutes != "" {
				exp, ok := s.Get(KeyExpiry)
				tm, isTime := exp.(time.Time)
				if !ok || !isTime || tm.Sub(time.Now()) < 85*time.Minute || tm.Sub(time.Now()) > 95*time.Minute {
					t.Errorf("_session_expiry = %#v; want a time ~90 minutes ahead", exp)
				}
			}

			// Go writes → Django reads.
			s.Set("from_go", map[string]any{"n": int64(7), "s": "José 😀"})
			if err := store.Save(ctx, s); err != nil {
				t.Fatal(err)
			}
			cookie = s.Key()
			who := dj.run("whoami", cookie)
			if fmt.Sprint(who["user_id"]) != wantID {
				t.Fatalf("Django sees user %v after Go's save; want %s (%v)", who["user_id"], wantID, who)
			}
			sess := who["session"].(map[string]any)
			if d := cmp.Diff(map[string]any{"n": 7.0, "s": "José 😀"}, sess["from_go"]); d != "" {
				t.Errorf("Django read from_go (-want +got):\n%s", d)
			}
			if d := cmp.Diff([]any{"Zoë ☃", 3.0, 2.5, true, nil}, sess["cart"]); d != "" {
				t.Errorf("Django read cart after Go's save (-want +got):\n%s", d)
			}

			// Django writes → Go reads.
			cookie = dj.run("set", cookie, "from_django", `{"x": [1, 2], "big": 123456789012345678901}`)["cookie"].(string)
			s, err = store.Load(ctx, cookie)
			if err != nil {
				t.Fatal(err)
			}
			fd, _ := s.Get("from_django")
			if m, ok := fd.(map[string]any); !ok || fmt.Sprint(m["x"]) != "[1 2]" || fmt.Sprint(m["big"]) != "123456789012345678901" {
				t.Errorf("from_django = %#v", fd)
			}

			// A session Go creates from scratch is a Django login.
			ns := NewSession()
			ns.Set(KeyUserID, wantID)
			ns.Set(KeyUserBackend, ModelBackend)
			ns.Set(KeyUserHash, authHash(testSecret, added["password"].(string)))
			if err := store.Save(ctx, ns); err != nil {
				t.Fatal(err)
			}
			if who := dj.run("whoami", ns.Key()); fmt.Sprint(who["user_id"]) != wantID {
				t.Errorf("Django does not see Go's new login: %v", who)
			}

			// CycleKey: the old key is gone, the new one carries the login.
			if v.engine != "signed_cookies" {
				old := ns.Key()
				ns.CycleKey()
				if err := store.Save(ctx, ns); err != nil {
					t.Fatal(err)
				}
				if ns.Key() == old || ns.Key() == "" {
					t.Fatalf("key not cycled: %q", ns.Key())
				}
				if who := dj.run("whoami", old); who["user_id"] != nil {
					t.Errorf("old key still logged in after CycleKey: %v", who)
				}
				if who := dj.run("whoami", ns.Key()); fmt.Sprint(who["user_id"]) != wantID {
					t.Errorf("new key not logged in after CycleKey: %v", who)
				}
			}

			// Deactivation, then a password change, end the login in Go.
			dj.run("setactive", "alice", "0")
			if _, err := users.Check(ctx, s); !errors.Is(err, ErrAnonymous) {
				t.Fatalf("inactive user accepted: %v", err)
			}
			dj.run("setactive", "alice", "1")
			if _, err := users.Check(ctx, s); err != nil {
				t.Fatalf("reactivated user rejected: %v", err)
			}
			dj.run("setpassword", "alice", "pw-two")
			_, err = users.Check(ctx, s)
			var ae *AnonymousError
			if !errors.As(err, &ae) || !ae.HashMismatch {
				t.Fatalf("session survived a password change: %v", err)
			}
			if who := dj.run("whoami", cookie); who["user_id"] != nil {
				t.Errorf("Django still accepts the session after the password change: %v", who)
			}
		})
	}
}

// authHash is Django's get_session_auth_hash for a password field.
func authHash(secret, password string) string {
	return hex.EncodeToString(signing.SaltedHMAC(signing.SHA256, authHashSalt, []byte(secret), []byte(password)))
}
