package sessions

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Golden values from django-services.md §1.7 (Django 3.2.25, time pinned
// to 1700000000, this made-up key).
const (
	goldenKey     = "demo-only-secret-not-for-production-0123456789"
	goldenTime    = 1700000000
	goldenPayload = ".eJxVjDsOwyAQBe9CHSG8BhZSpvcZEJ8lOImwZOwqyt2DJRdJ-2bmvZnz-1bc3mh1c2JXJoFdfsfg45PqQdLD1_vC41K3dQ78UPhJG5-WRK_b6f4dFN9KrzUSRusTeRgFKsg2WlCgg8RRg4RshDWCLA3YLRlUzNh5CsngQBTY5wv4Pzfv:1r31eq"
	goldenDB      = goldenPayload + ":iZTG6rjGiSqHfJtf_IiWih4sYAVLbvyBl1ciP7f3SH4"
	goldenCookie  = goldenPayload + ":6yIghE7FRwn6yw655Ujq0CzjUUv-g5oU3ZFsZQZaRxo"
	goldenLegacy  = "ZjhjNTJkZDViM2ZmYzhlMWY5NzA0MmMyNDE3YjVlNzkzNWUwZDUwNDp7ImNhcnQiOiIzIn0="
	goldenPW      = "pbkdf2_sha256$260000$fixedsalt0123456$HCIvcPLzvwxKKeUeKdIRQQTd4nf/ljpXdXiFA6zx1SU="
	goldenHash    = "67e7c9adea230752f9c92526b4736242f80980e9e179ad4b5cf7252dbd871eeb"
)

func clock(offset time.Duration) func() time.Time {
	return func() time.Time { return time.Unix(goldenTime, 0).Add(offset) }
}

func signedStore(t *testing.T, cfg Config) Store {
	t.Helper()
	cfg.Engine = EngineSignedCookies
	if cfg.Keys.Current == nil {
		cfg.Keys.Current = []byte(goldenKey)
	}
	if cfg.Now == nil {
		cfg.Now = clock(time.Minute)
	}
	st, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSignedCookieLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 1
		return string(b)
	}
	signedString, _ := mustSigner(t, SaltSignedCookies).Dumps("not a dict", true)
	tests := []struct {
		name   string
		store  Store
		cookie string
		ok     bool
	}{
		{"golden", signedStore(t, Config{}), goldenCookie, true},
		{"tampered payload", signedStore(t, Config{}), flip(goldenCookie, 20), false},
		{"tampered signature", signedStore(t, Config{}), flip(goldenCookie, len(goldenCookie)-5), false},
		{"tampered timestamp", signedStore(t, Config{}), strings.Replace(goldenCookie, ":1r31eq:", ":1r31ep:", 1), false},
		{"truncated", signedStore(t, Config{}), goldenCookie[:len(goldenCookie)-1], false},
		{"truncated to payload", signedStore(t, Config{}), goldenPayload, false},
		{"too short", signedStore(t, Config{}), "abc:d:e", false},
		{"empty", signedStore(t, Config{}), "", false},
		{"db salt is not a cookie", signedStore(t, Config{}), goldenDB, false},
		{"expired", signedStore(t, Config{Now: clock(14*24*time.Hour + time.Second)}), goldenCookie, false},
		{"just within age", signedStore(t, Config{Now: clock(14 * 24 * time.Hour)}), goldenCookie, true},
		{"shorter cookie age", signedStore(t, Config{CookieAge: 30 * time.Second}), goldenCookie, false},
		{"wrong key", signedStore(t, Config{Keys: signing.Keys{Current: []byte("another-key")}}), goldenCookie, false},
		{"old key as fallback", signedStore(t, Config{Keys: signing.Keys{Current: []byte("new-key"), Fallbacks: [][]byte{[]byte(goldenKey)}}}), goldenCookie, true},
		{"signed non-dict", signedStore(t, Config{}), signedString, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.store.Load(ctx, tc.cookie)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := s.String(KeyUserID)
			if tc.ok != (id == "42") {
				t.Fatalf("user id %q; want accepted=%v", id, tc.ok)
			}
			if !tc.ok && !s.IsEmpty() {
				t.Fatalf("rejected cookie gave a non-empty session: %v", s.Values())
			}
		})
	}
}

func mustSigner(t *testing.T, salt string) *signing.Signer {
	t.Helper()
	s, err := signing.New(signing.Config{Keys: signing.Keys{Current: []byte(goldenKey)}, Salt: salt, Now: clock(0)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedCookieSaveUsesCurrentKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rotated := signedStore(t, Config{Keys: signing.Keys{Current: []byte("new-key"), Fallbacks: [][]byte{[]byte(goldenKey)}}})
	s, _ := rotated.Load(ctx, goldenCookie)
	s.Set("x", "y")
	if err := rotated.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, _ := signedStore(t, Config{Keys: signing.Keys{Current: []byte("new-key")}}).Load(ctx, s.Key()); got.Len() != 4 {
		t.Fatalf("re-signed cookie not readable with the new key alone: %v", got.Values())
	}
	if got, _ := signedStore(t, Config{}).Load(ctx, s.Key()); !got.IsEmpty() {
		t.Fatal("re-signed cookie still verifies with the old key")
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	now := time.Unix(goldenTime, 0)
	age := 14 * 24 * time.Hour
	tests := []struct {
		name      string
		expiry    any
		wantAge   time.Duration
		atClose   bool
		closeDflt bool
	}{
		{"default", nil, age, false, false},
		{"default browser close", nil, age, true, true},
		{"seconds", int64(300), 300 * time.Second, false, false},
		{"zero means browser close", int64(0), age, true, false},
		{"moment", now.Add(90*time.Minute + 500*time.Millisecond), 90 * time.Minute, false, true},
		{"past moment", now.Add(-1500 * time.Millisecond), -2 * time.Second, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSession()
			if tc.expiry != nil {
				s.Set(KeyExpiry, tc.expiry)
			}
			if got := s.ExpiryAge(now, age); got != tc.wantAge {
				t.Errorf("ExpiryAge = %s, want %s", got, tc.wantAge)
			}
			if got := s.ExpireAtBrowserClose(tc.closeDflt); got != tc.atClose {
				t.Errorf("ExpireAtBrowserClose = %v, want %v", got, tc.atClose)
			}
		})
	}
	s := NewSession()
	s.SetExpiry(time.Hour, now)
	if got := s.ExpiryDate(now, age); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("SetExpiry(Duration): ExpiryDate = %s", got)
	}
	s.SetExpiry(nil, now)
	if _, ok := s.Get(KeyExpiry); ok {
		t.Error("SetExpiry(nil) kept the expiry")
	}
}

func TestNewKey(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		k := NewKey()
		if len(k) != 32 || strings.Trim(k, keyChars) != "" || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
	}
}

func TestNewStoreRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]Config{
		"no engine":         {},
		"unknown engine":    {Engine: "file"},
		"signed needs key":  {Engine: EngineSignedCookies},
		"db needs DB":       {Engine: EngineDB, Keys: signing.Keys{Current: []byte("k")}},
		"cache needs cache": {Engine: EngineCache},
		"bad serializer":    {Engine: EngineSignedCookies, Keys: signing.Keys{Current: []byte("k")}, Serializer: "yaml"},
		"negative age":      {Engine: EngineSignedCookies, Keys: signing.Keys{Current: []byte("k")}, CookieAge: -time.Second},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := NewStore(cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v; want ErrConfig", err)
			}
		})
	}
	for _, e := range []string{"django.contrib.sessions.backends.cached_db", "db", "signed_cookies", "cache"} {
		if _, err := ParseEngine(e); err != nil {
			t.Errorf("ParseEngine(%q): %v", e, err)
		}
	}
}

// TestDBStore covers the db engine against PostgreSQL without Django: the
// golden row, expiry, corruption, the legacy format, and a save racing a
// delete.
func TestDBStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, dsn := testDatabase(t)
	db, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	rows := map[string]struct {
		data   string
		expire time.Duration // from now
	}{
		"goldenkey0000000000000000000000a": {goldenDB, time.Hour},
		"expiredkey0000000000000000000000": {goldenDB, -time.Second},
		"corruptkey0000000000000000000000": {"garbage:1r31eq:xyz", time.Hour},
		"legacykey0000000000000000000000a": {goldenLegacy, time.Hour},
	}
	for k, r := range rows {
		if _, err := db.Exec(ctx, "INSERT INTO django_session VALUES ($1, $2, $3)", k, r.data, time.Now().Add(r.expire)); err != nil {
			t.Fatal(err)
		}
	}
	newDB := func(acceptSHA1 bool) Store {
		st, err := NewStore(Config{Engine: EngineDB, DB: db, Keys: signing.Keys{Current: []byte(goldenKey)}, AcceptSHA1: acceptSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, legacy := newDB(false), newDB(true)
	tests := []struct {
		name    string
		store   Store
		key     string
		wantKey string
		wantLen int
	}{
		{"golden", st, "goldenkey0000000000000000000000a", "goldenkey0000000000000000000000a", 3},
		{"expired row", st, "expiredkey0000000000000000000000", "", 0},
		{"missing", st, "missingkey0000000000000000000000", "", 0},
		{"short key", st, "abc", "", 0},
		{"too long key", st, strings.Repeat("a", 41), "", 0},
		{"corrupt keeps key", st, "corruptkey0000000000000000000000", "corruptkey0000000000000000000000", 0},
		{"legacy refused by default", st, "legacykey0000000000000000000000a", "legacykey0000000000000000000000a", 0},
		{"legacy with AcceptSHA1", legacy, "legacykey0000000000000000000000a", "legacykey0000000000000000000000a", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.store.Load(ctx, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if s.Key() != tc.wantKey || s.Len() != tc.wantLen {
				t.Fatalf("Load = key %q, %v; want key %q with %d values", s.Key(), s.Values(), tc.wantKey, tc.wantLen)
			}
		})
	}
	t.Run("save after delete", func(t *testing.T) {
		s, _ := st.Load(ctx, "goldenkey0000000000000000000000a")
		if err := st.Delete(ctx, s.Key()); err != nil {
			t.Fatal(err)
		}
		s.Set("x", int64(1))
		if err := st.Save(ctx, s); !errors.Is(err, ErrSessionGone) {
			t.Fatalf("err = %v; want ErrSessionGone", err)
		}
	})
	t.Run("expire_date follows the session", func(t *testing.T) {
		s := NewSession()
		s.Set(KeyExpiry, int64(600))
		if err := st.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
		var left time.Duration
		if err := db.QueryRow(ctx, "SELECT expire_date - now() FROM django_session WHERE session_key = $1", s.Key()).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left < 590*time.Second || left > 610*time.Second {
			t.Fatalf("expire_date is %s ahead; want ~600s", left)
		}
	})
}

func TestRedisCacheFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	prefix := testenv.Prefix(t)
	t.Cleanup(func() {
		keys, _ := rc.Keys(ctx, prefix+":*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
		_ = rc.Close()
	})
	cache, err := NewRedisCache(RedisConfig{Client: rc, KeyPrefix: prefix, Version: 3, Serializer: CacheJSON})
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(Config{Engine: EngineCache, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSession()
	s.Set(KeyUserID, "42")
	s.Set(KeyExpiry, int64(120))
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	raw := prefix + ":3:django.contrib.sessions.cache" + s.Key()
	val, err := rc.Get(ctx, raw).Result()
	if err != nil {
		t.Fatalf("key %s: %v", raw, err)
	}
	if want := `{"_auth_user_id": "42", "_session_expiry": 120}`; val != want {
		t.Errorf("value %s; want %s", val, want)
	}
	if ttl := rc.PTTL(ctx, raw).Val(); ttl < 119*time.Second || ttl > 120*time.Second {
		t.Errorf("TTL %s; want ~120s", ttl)
	}
	// Garbage in the cache is an empty session, not an error.
	evilKey := "evilkey000000000000000000000000a"
	rc.Set(ctx, prefix+":3:django.contrib.sessions.cache"+evilKey, "\x80\x04\x8c\x02os\x8c\x06system\x93.", time.Minute)
	if got, err := st.Load(ctx, evilKey); err != nil || !got.IsEmpty() {
		t.Fatalf("evil entry: %v, %v", got.Values(), err)
	}
	// A session deleted while a request holds it cannot be saved back.
	if err := st.Delete(ctx, s.Key()); err != nil {
		t.Fatal(err)
	}
	s.Set("x", "y")
	if err := st.Save(ctx, s); !errors.Is(err, ErrSessionGone) {
		t.Fatalf("err = %v; want ErrSessionGone", err)
	}
}

func TestCacheOutageIsAnError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rc := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rc.Close() })
	cache, _ := NewRedisCache(RedisConfig{Client: rc})
	st, _ := NewStore(Config{Engine: EngineCache, Cache: cache})
	if _, err := st.Load(context.Background(), "somekey000000000000000000000000a"); !errors.Is(err, ErrBackend) {
		t.Fatalf("err = %v; want ErrBackend", err)
	}
}

func FuzzDecodeCacheValue(f *testing.F) {
	f.Add([]byte(`{"_auth_user_id": "42"}`))
	f.Add([]byte("\x80\x04}\x94."))
	f.Add(signing.Deflate([]byte(`{"a": 1}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeCacheValue(b)
		if err == nil && m == nil {
			t.Fatal("nil dict without an error")
		}
	})
}

func signingKeys(k string) signing.Keys { return signing.Keys{Current: []byte(k)} }

// TestSignedCookieCache checks the verified-payload cache: a hit still
// enforces the age limit, and callers get private copies.
func TestSignedCookieCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(goldenTime, 0)
	st := signedStore(t, Config{Now: func() time.Time { return now }})
	s := NewSession()
	s.Set("cart", []any{"a", map[string]any{"n": int64(1)}})
	if err := st.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	first, _ := st.Load(ctx, s.Key())
	cart, _ := first.Get("cart")
	cart.([]any)[0] = "mutated"
	cart.([]any)[1].(map[string]any)["n"] = int64(2)
	second, _ := st.Load(ctx, s.Key())
	if got, _ := second.Get("cart"); got.([]any)[0] != "a" || got.([]any)[1].(map[string]any)["n"] != int64(1) {
		t.Fatalf("a caller's change leaked into the cache: %v", got)
	}
	now = now.Add(14*24*time.Hour + time.Second)
	if expired, _ := st.Load(ctx, s.Key()); !expired.IsEmpty() {
		t.Fatal("cached cookie accepted past SESSION_COOKIE_AGE")
	}
}
