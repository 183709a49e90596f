package signing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Golden vectors: django-services.md §1.7, computed with Django 3.2.25 at
// time 1700000000 under this made-up key.
const (
	goldenKey  = "demo-only-secret-not-for-production-0123456789"
	goldenTime = 1700000000
	authHash   = "67e7c9adea230752f9c92526b4736242f80980e9e179ad4b5cf7252dbd871eeb"
	dbSession  = ".eJxVjDsOwyAQBe9CHSG8BhZSpvcZEJ8lOImwZOwqyt2DJRdJ-2bmvZnz-1bc3mh1c2JXJoFdfsfg45PqQdLD1_vC41K3dQ78UPhJG5-WRK_b6f4dFN9KrzUSRusTeRgFKsg2WlCgg8RRg4RshDWCLA3YLRlUzNh5CsngQBTY5wv4Pzfv:1r31eq:iZTG6rjGiSqHfJtf_IiWih4sYAVLbvyBl1ciP7f3SH4"
)

var sessionDict = map[string]any{
	"_auth_user_id":      "42",
	"_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
	"_auth_user_hash":    authHash,
}

func golden(t *testing.T, cfg Config) *Signer {
	t.Helper()
	if cfg.Keys.Current == nil {
		cfg.Keys.Current = []byte(goldenKey)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Unix(goldenTime, 0) }
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBase62(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n int64
		s string
	}{{0, "0"}, {61, "z"}, {62, "10"}, {goldenTime, "1r31eq"}, {-62, "-10"}} {
		if got := EncodeBase62(tc.n); got != tc.s {
			t.Errorf("EncodeBase62(%d) = %q, want %q", tc.n, got, tc.s)
		}
		if got, err := DecodeBase62(tc.s); err != nil || got != tc.n {
			t.Errorf("DecodeBase62(%q) = %d, %v", tc.s, got, err)
		}
	}
	for _, bad := range []string{"", "-", "1r3_eq", "zzzzzzzzzzz"} {
		if _, err := DecodeBase62(bad); err == nil {
			t.Errorf("DecodeBase62(%q) accepted", bad)
		}
	}
}

func TestGoldenVectors(t *testing.T) {
	t.Parallel()
	t.Run("dumps string", func(t *testing.T) {
		got, err := golden(t, Config{}).Dumps("hello", false)
		want := "ImhlbGxvIg:1r31eq:K2Eb_1NQXOvj6q9fVN0TG3dgs6WSemQoC5u1MGwxLMg"
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("dumps dict", func(t *testing.T) {
		got, err := golden(t, Config{}).Dumps(map[string]any{"a": int64(1)}, false)
		want := "eyJhIjoxfQ:1r31eq:1O8YQY4rosLCxKFkJgaZ93omhIOUDGKy7-Xcr4OdOIY"
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("signer", func(t *testing.T) {
		got := golden(t, Config{Salt: "django.core.signing.Signer"}).Sign("hello")
		if want := "hello:gZvps_Ni8v4LDLtrgaWhZQyRaEkDwTkB0j-lTqzFZQg"; got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("cookie signer", func(t *testing.T) {
		s := golden(t, Config{Keys: Keys{Current: []byte(goldenKey)}.WithPrefix("django.http.cookies"), Salt: "theme"})
		if got, want := s.SignTimestamp("dark"), "dark:1r31eq:ZpVMb37ko0f5dQspwVWRznwu-CzvVe-LVB_Dp27RyvY"; got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("db session loads", func(t *testing.T) {
		got, err := golden(t, Config{Salt: "django.contrib.sessions.SessionStore"}).Loads(dbSession, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sessionDict, got); d != "" {
			t.Fatal(d)
		}
	})
	t.Run("signed cookie signature", func(t *testing.T) {
		payload := dbSession[:strings.LastIndexByte(dbSession, ':')]
		s := golden(t, Config{Salt: "django.contrib.sessions.backends.signed_cookies"})
		if got, want := s.Signature(payload), "6yIghE7FRwn6yw655Ujq0CzjUUv-g5oU3ZFsZQZaRxo"; got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	})
	t.Run("small dict not compressed", func(t *testing.T) {
		got, err := golden(t, Config{Salt: "django.contrib.sessions.SessionStore"}).Dumps(map[string]any{"cart": "3"}, true)
		want := "eyJjYXJ0IjoiMyJ9:1r31eq:wRNP3KE7jSkbHH1_OepLHZ0Efr-bBOt-DuvER9kNas8"
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	t.Run("dumps compressed roundtrip", func(t *testing.T) {
		s := golden(t, Config{Salt: "django.contrib.sessions.SessionStore"})
		tok, err := s.Dumps(sessionDict, true)
		if err != nil || !strings.HasPrefix(tok, ".") {
			t.Fatalf("got %q, %v; want a compressed token", tok, err)
		}
		got, err := s.Loads(tok, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sessionDict, got); d != "" {
			t.Fatal(d)
		}
	})
	t.Run("sha1 accepted only when asked", func(t *testing.T) {
		payload := dbSession[:strings.LastIndexByte(dbSession, ':')]
		sha1Token := payload + ":RwaSbVcc-CAmsHx7jVYdbIQ8r_k"
		salt := "django.contrib.sessions.SessionStore"
		if _, err := golden(t, Config{Salt: salt}).Loads(sha1Token, 0); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("SHA-1 accepted without AcceptSHA1: %v", err)
		}
		got, err := golden(t, Config{Salt: salt, AcceptSHA1: true}).Loads(sha1Token, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sessionDict, got); d != "" {
			t.Fatal(d)
		}
		if sig := golden(t, Config{Salt: salt, Algorithm: SHA1}).Signature(payload); sig != "RwaSbVcc-CAmsHx7jVYdbIQ8r_k" {
			t.Fatalf("SHA-1 signature %q", sig)
		}
	})
	t.Run("auth hash", func(t *testing.T) {
		pw := "pbkdf2_sha256$260000$fixedsalt0123456$HCIvcPLzvwxKKeUeKdIRQQTd4nf/ljpXdXiFA6zx1SU="
		got := SaltedHMAC(SHA256, "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash", []byte(goldenKey), []byte(pw))
		if h := hexString(got); h != authHash {
			t.Fatalf("got %s", h)
		}
	})
}

func hexString(b []byte) string {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return string(out)
}

func TestLoadsRejects(t *testing.T) {
	t.Parallel()
	s := golden(t, Config{Salt: "django.contrib.sessions.SessionStore"})
	later := golden(t, Config{Salt: "django.contrib.sessions.SessionStore",
		Now: func() time.Time { return time.Unix(goldenTime+3600, 0) }})
	payload, sig := dbSession[:strings.LastIndexByte(dbSession, ':')], dbSession[strings.LastIndexByte(dbSession, ':')+1:]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name   string
		signer *Signer
		in     string
		maxAge time.Duration
		want   error
	}{
		{"tampered payload", s, flip(payload, 10) + ":" + sig, 0, ErrBadSignature},
		{"tampered signature", s, payload + ":" + flip(sig, 5), 0, ErrBadSignature},
		{"tampered timestamp", s, strings.Replace(dbSession, ":1r31eq:", ":1r31er:", 1), 0, ErrBadSignature},
		{"truncated", s, dbSession[:len(dbSession)-3], 0, ErrBadSignature},
		{"truncated to payload", s, payload, 0, ErrBadSignature},
		{"empty", s, "", 0, ErrBadSignature},
		{"no separator", s, "abc", 0, ErrBadSignature},
		{"wrong key", golden(t, Config{Keys: Keys{Current: []byte("other")}, Salt: "django.contrib.sessions.SessionStore"}), dbSession, 0, ErrBadSignature},
		{"wrong salt", golden(t, Config{Salt: "django.contrib.sessions.backends.signed_cookies"}), dbSession, 0, ErrBadSignature},
		{"expired", later, dbSession, time.Minute, ErrBadSignature},
		{"signature not b64", s, payload + ":!!!", 0, ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := tc.signer.Loads(tc.in, tc.maxAge)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Loads = %v, %v; want %v", v, err, tc.want)
			}
		})
	}
	t.Run("expired is typed", func(t *testing.T) {
		_, err := later.Loads(dbSession, time.Minute)
		var ee *ExpiredError
		if !errors.As(err, &ee) || ee.Age != time.Hour {
			t.Fatalf("err = %v", err)
		}
		if _, err := later.Loads(dbSession, 2*time.Hour); err != nil {
			t.Fatalf("within max age: %v", err)
		}
	})
	t.Run("signed garbage is malformed", func(t *testing.T) {
		for _, body := range []string{".bm90IHpsaWI", "bm90IGpzb24", "!!"} {
			if _, err := s.Loads(s.SignTimestamp(body), 0); !errors.Is(err, ErrMalformed) {
				t.Errorf("Loads(%q) err = %v; want ErrMalformed", body, err)
			}
		}
	})
	t.Run("zip bomb bounded", func(t *testing.T) {
		small := golden(t, Config{Salt: "x", MaxDecompressed: 1000})
		tok, err := small.Dumps(strings.Repeat("a", 5000), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := small.Loads(tok, 0); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v; want ErrTooLarge", err)
		}
	})
}

func TestFallbackKeys(t *testing.T) {
	t.Parallel()
	a, b := []byte("key-A"), []byte("key-B")
	tok, err := golden(t, Config{Keys: Keys{Current: a}}).Dumps("v", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := golden(t, Config{Keys: Keys{Current: b}}).Loads(tok, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("B alone accepted an A signature: %v", err)
	}
	rotated := golden(t, Config{Keys: Keys{Current: b, Fallbacks: [][]byte{[]byte("key-C"), a}}})
	if v, err := rotated.Loads(tok, 0); err != nil || v != "v" {
		t.Fatalf("fallback not honoured: %v, %v", v, err)
	}
	// Signing after rotation uses B only.
	tok2, _ := rotated.Dumps("v", false)
	if _, err := golden(t, Config{Keys: Keys{Current: b}}).Loads(tok2, 0); err != nil {
		t.Fatalf("new token not signed with the current key: %v", err)
	}
	if _, err := golden(t, Config{Keys: Keys{Current: a}}).Loads(tok2, 0); err == nil {
		t.Fatal("new token verifies with the old key")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no key":         {},
		"empty fallback": {Keys: Keys{Current: []byte("k"), Fallbacks: [][]byte{nil}}},
		"bad algorithm":  {Keys: Keys{Current: []byte("k")}, Algorithm: 9},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzLoads(f *testing.F) {
	s, err := New(Config{Keys: Keys{Current: []byte(goldenKey)}, Salt: "django.contrib.sessions.SessionStore", AcceptSHA1: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(dbSession)
	f.Add("eyJjYXJ0IjoiMyJ9:1r31eq:wRNP3KE7jSkbHH1_OepLHZ0Efr-bBOt-DuvER9kNas8")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := s.Loads(in, time.Hour)
		if err == nil && in != dbSession && !strings.HasPrefix(in, "eyJjYXJ0IjoiMyJ9:1r31eq:") {
			// Only inputs carrying a real signature may pass.
			if _, uerr := s.Unsign(in); uerr != nil {
				t.Fatalf("Loads accepted %q (%v) without a valid signature", in, v)
			}
		}
	})
}

func FuzzPayload(f *testing.F) {
	// The signature is checked before decoding; this drives the decoder
	// behind it with arbitrary signed payloads.
	s, _ := New(Config{Keys: Keys{Current: []byte("k")}})
	f.Add(".eJxVjDsOwyAQBe9CHSG8BhZSpvcZEJ8lOImwZOwqyt2DJRdJ")
	f.Add("eyJhIjoxfQ")
	f.Fuzz(func(t *testing.T, payload string) {
		_, _ = s.Loads(s.SignTimestamp(payload), 0)
	})
}
