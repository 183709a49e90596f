package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// MiddlewareConfig configures the net/http session middleware. The cookie
// fields mirror Django's SESSION_COOKIE_* settings and should match them.
type MiddlewareConfig struct {
	// Store loads and saves the sessions. Required.
	Store Store
	// Users, when set, checks each session's login like Django's
	// AuthenticationMiddleware; UserFromContext then returns the user.
	Users *Users
	// CookieName is SESSION_COOKIE_NAME; default sessionid.
	CookieName string
	// CookieDomain is SESSION_COOKIE_DOMAIN; default none.
	CookieDomain string
	// CookiePath is SESSION_COOKIE_PATH; default "/".
	CookiePath string
	// CookieSecure is SESSION_COOKIE_SECURE.
	CookieSecure bool
	// CookieScriptReadable drops HttpOnly (SESSION_COOKIE_HTTPONLY = False).
	CookieScriptReadable bool
	// CookieSameSite is SESSION_COOKIE_SAMESITE; default Lax.
	CookieSameSite http.SameSite
	// CookieAge is SESSION_COOKIE_AGE; default two weeks.
	CookieAge time.Duration
	// ExpireAtBrowserClose is SESSION_EXPIRE_AT_BROWSER_CLOSE.
	ExpireAtBrowserClose bool
	// SaveEveryRequest is SESSION_SAVE_EVERY_REQUEST.
	SaveEveryRequest bool
	// Logger receives store failures; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Middleware gives handlers the request's session, saves it when they
// change it and sets or deletes the cookie, as Django's SessionMiddleware
// does.
type Middleware struct{ cfg MiddlewareConfig }

// NewMiddleware checks cfg and applies defaults.
func NewMiddleware(cfg MiddlewareConfig) (*Middleware, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: MiddlewareConfig.Store is required", ErrConfig)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "sessionid"
	}
	if !validCookieName(cfg.CookieName) {
		return nil, fmt.Errorf("%w: MiddlewareConfig.CookieName %q is not a valid cookie name", ErrConfig, cfg.CookieName)
	}
	if cfg.CookiePath == "" {
		cfg.CookiePath = "/"
	}
	if cfg.CookieSameSite == 0 {
		cfg.CookieSameSite = http.SameSiteLaxMode
	}
	if cfg.CookieAge == 0 {
		cfg.CookieAge = 14 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Middleware{cfg: cfg}, nil
}

// validCookieName accepts an RFC 6265 token.
func validCookieName(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '(' || c == ')' || c == ',' || c == '/' ||
			c == ':' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
			c == '[' || c == '\\' || c == ']' || c == '{' || c == '}' {
			return false
		}
	}
	return s != ""
}

type ctxKey int

const (
	sessionKey ctxKey = iota
	userKey
)

// FromContext returns the request's session (nil outside the middleware).
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey).(*Session)
	return s
}

// UserFromContext returns the logged-in user, if the middleware has Users
// and the session holds a valid login.
func UserFromContext(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey).(User)
	return u, ok
}

// CookieValue returns the value of the named cookie; with several, the
// last, as Django's cookie parser keeps.
func CookieValue(r *http.Request, name string) string {
	v := ""
	for _, c := range r.CookiesNamed(name) {
		v = c.Value
	}
	return v
}

// Wrap returns h with sessions. A store failure while loading answers 503;
// while saving, the handler's response is replaced by a 503 (or a 400 when
// the session was deleted meanwhile, as Django's SessionInterrupted).
func (m *Middleware) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie := CookieValue(r, m.cfg.CookieName)
		s, err := m.cfg.Store.Load(r.Context(), cookie)
		if err != nil {
			m.cfg.Logger.Error("sessions: load failed", slog.Any("error", err))
			http.Error(w, "session store unavailable", http.StatusServiceUnavailable)
			return
		}
		ctx := context.WithValue(r.Context(), sessionKey, s)
		if m.cfg.Users != nil {
			u, err := m.cfg.Users.Check(r.Context(), s)
			var ae *AnonymousError
			switch {
			case err == nil:
				ctx = context.WithValue(ctx, userKey, u)
			case errors.As(err, &ae):
				if ae.HashMismatch {
					s.Flush() // Django logs the session out, on every device
				}
			default:
				m.cfg.Logger.Error("sessions: user check failed", slog.Any("error", err))
				http.Error(w, "user store unavailable", http.StatusServiceUnavailable)
				return
			}
		}
		sw := &writer{ResponseWriter: w, m: m, r: r, s: s, hadCookie: cookie != ""}
		h.ServeHTTP(sw, r.WithContext(ctx))
		sw.commit(http.StatusOK)
	})
}

// writer saves the session just before the response headers go out.
type writer struct {
	http.ResponseWriter
	m         *Middleware
	r         *http.Request
	s         *Session
	hadCookie bool
	committed bool
	failed    bool // the save failed: the handler's output is discarded
}

func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *writer) WriteHeader(code int) {
	switch {
	case code < 200: // informational (103 Early Hints): not the response yet
	case w.committed:
		if w.failed {
			return
		}
	case w.commit(code):
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	if !w.committed {
		if w.commit(http.StatusOK) {
			return len(p), nil
		}
		w.ResponseWriter.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *writer) Flush() {
	if !w.committed {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// commit runs once, before the status is written: it saves the session
// and sets or deletes the cookie, following SessionMiddleware.process_response.
// It reports true when it wrote an error response itself.
func (w *writer) commit(code int) bool {
	if w.committed {
		return false
	}
	w.committed = true
	cfg := &w.m.cfg
	s := w.s
	h := w.Header()
	h.Add("Vary", "Cookie")
	if s.IsEmpty() {
		if s.oldKey != "" { // flushed: the stored session goes too
			if err := cfg.Store.Delete(w.r.Context(), s.oldKey); err != nil {
				return w.fail(err)
			}
			s.oldKey = ""
		}
		if w.hadCookie {
			http.SetCookie(w.ResponseWriter, &http.Cookie{
				Name: cfg.CookieName, Value: "", Path: cfg.CookiePath, Domain: cfg.CookieDomain,
				MaxAge: -1, Expires: time.Unix(0, 0), SameSite: cfg.CookieSameSite,
			})
		}
		return false
	}
	if !(s.modified || cfg.SaveEveryRequest || s.oldKey != "") || code == http.StatusInternalServerError {
		return false // Django skips saving for 500 responses
	}
	if err := cfg.Store.Save(w.r.Context(), s); err != nil {
		return w.fail(err)
	}
	c := &http.Cookie{
		Name: cfg.CookieName, Value: s.key, Path: cfg.CookiePath, Domain: cfg.CookieDomain,
		Secure: cfg.CookieSecure, HttpOnly: !cfg.CookieScriptReadable, SameSite: cfg.CookieSameSite,
	}
	if !s.ExpireAtBrowserClose(cfg.ExpireAtBrowserClose) {
		now := cfg.Now()
		age := s.ExpiryAge(now, cfg.CookieAge)
		c.MaxAge = int(age / time.Second)
		if c.MaxAge <= 0 {
			c.MaxAge = -1
		}
		c.Expires = now.Add(age)
	}
	http.SetCookie(w.ResponseWriter, c)
	return false
}

func (w *writer) fail(err error) bool {
	w.failed = true
	code, msg := http.StatusServiceUnavailable, "session store unavailable"
	if errors.Is(err, ErrSessionGone) {
		code, msg = http.StatusBadRequest, "session was deleted during the request"
	}
	w.m.cfg.Logger.Error("sessions: save failed", slog.Any("error", err))
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.ResponseWriter.WriteHeader(code)
	_, _ = io.WriteString(w.ResponseWriter, msg+"\n")
	return true
}
