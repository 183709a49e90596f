package sessions

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
)

// failingStore fakes a store whose saves fail.
type failingStore struct {
	Store
	err error
}

func (f failingStore) Save(context.Context, *Session) error { return f.err }

func TestMiddleware(t *testing.T) {
	t.Parallel()
	store := signedStore(t, Config{})
	handler := func(f func(w http.ResponseWriter, s *Session)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f(w, FromContext(r.Context()))
		})
	}
	tests := []struct {
		name       string
		store      Store
		cookie     string
		h          http.Handler
		wantCode   int
		wantCookie string // substring of Set-Cookie; "" means none
		wantBody   string
	}{
		{"untouched", store, "", handler(func(w http.ResponseWriter, s *Session) { io.WriteString(w, "hi") }),
			200, "", "hi"},
		{"new value sets cookie", store, "", handler(func(w http.ResponseWriter, s *Session) { s.Set("a", "b") }),
			200, "sessionid=", ""},
		{"reads Django's session", store, goldenCookie, handler(func(w http.ResponseWriter, s *Session) {
			id, _ := s.String(KeyUserID)
			io.WriteString(w, id)
		}), 200, "", "42"},
		{"flush deletes cookie", store, goldenCookie, handler(func(w http.ResponseWriter, s *Session) { s.Flush() }),
			200, "Max-Age=0", ""},
		{"500 is not saved", store, "", handler(func(w http.ResponseWriter, s *Session) {
			s.Set("a", "b")
			w.WriteHeader(500)
		}), 500, "", ""},
		{"save failure replaces the response", failingStore{store, ErrBackend}, "", handler(func(w http.ResponseWriter, s *Session) {
			s.Set("a", "b")
			io.WriteString(w, "secret body")
		}), 503, "", "session store unavailable\n"},
		{"session deleted meanwhile", failingStore{store, ErrSessionGone}, "", handler(func(w http.ResponseWriter, s *Session) {
			s.Set("a", "b")
			w.WriteHeader(201)
		}), 400, "", "session was deleted during the request\n"},
		{"flusher", store, "", handler(func(w http.ResponseWriter, s *Session) {
			s.Set("a", "b")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Error(err)
			}
			io.WriteString(w, "streamed")
		}), 200, "sessionid=", "streamed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := NewMiddleware(MiddlewareConfig{Store: tc.store, Now: clock(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "sessionid", Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			mw.Wrap(tc.h).ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Errorf("status %d; want %d", rec.Code, tc.wantCode)
			}
			sc := rec.Header().Get("Set-Cookie")
			if tc.wantCookie == "" && sc != "" || tc.wantCookie != "" && !strings.Contains(sc, tc.wantCookie) {
				t.Errorf("Set-Cookie %q; want %q", sc, tc.wantCookie)
			}
			if tc.wantBody != "" && rec.Body.String() != tc.wantBody {
				t.Errorf("body %q; want %q", rec.Body.String(), tc.wantBody)
			}
			if rec.Header().Get("Vary") != "Cookie" && rec.Code < 400 {
				t.Errorf("Vary %q", rec.Header().Get("Vary"))
			}
		})
	}
}

func TestMiddlewareCookieAttributes(t *testing.T) {
	t.Parallel()
	mw, err := NewMiddleware(MiddlewareConfig{Store: signedStore(t, Config{}), CookieName: "sid", CookieDomain: ".example.com",
		CookieSecure: true, Now: clock(0)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		FromContext(r.Context()).Set("a", "b")
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	c := rec.Result().Cookies()
	if len(c) != 1 {
		t.Fatalf("cookies %v", c)
	}
	got := c[0]
	if got.Name != "sid" || got.Domain != "example.com" || !got.Secure || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode ||
		got.Path != "/" || got.MaxAge != 1209600 {
		t.Fatalf("cookie %+v", got)
	}
	// The cookie is a signed_cookies session Django (and this store) reads.
	s, _ := signedStore(t, Config{Now: clock(0)}).Load(context.Background(), got.Value)
	if v, _ := s.String("a"); v != "b" {
		t.Fatalf("cookie does not load back: %v", s.Values())
	}
	if _, err := NewMiddleware(MiddlewareConfig{Store: signedStore(t, Config{}), CookieName: "bad name"}); err == nil {
		t.Error("bad cookie name accepted")
	}
	if _, err := NewMiddleware(MiddlewareConfig{}); err == nil {
		t.Error("missing store accepted")
	}
}

// TestMiddlewareUser checks the login path: a valid login reaches the
// handler, and a session whose password hash no longer matches is flushed
// as Django does.
func TestMiddlewareUser(t *testing.T) {
	t.Parallel()
	db := usersDB(t)
	users, err := NewUsers(UsersConfig{DB: db, Keys: signing.Keys{Current: []byte(goldenKey)}})
	if err != nil {
		t.Fatal(err)
	}
	store := signedStore(t, Config{Now: clock(0)})
	mw, err := NewMiddleware(MiddlewareConfig{Store: store, Users: users, Now: clock(0)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := UserFromContext(r.Context()); ok {
			io.WriteString(w, u.ID)
		}
	}))
	do := func(cookie string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: "sessionid", Value: cookie})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do(goldenCookie); rec.Body.String() != "42" || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("valid login: body %q, Set-Cookie %q", rec.Body.String(), rec.Header().Get("Set-Cookie"))
	}
	s := loginSession("42", ModelBackend, strings.Repeat("0", 64))
	if err := store.Save(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	rec := do(s.Key())
	if rec.Body.String() != "" || !strings.Contains(rec.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("stale hash: body %q, Set-Cookie %q; want anonymous and the cookie deleted", rec.Body.String(), rec.Header().Get("Set-Cookie"))
	}
}
