package forwardauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/celeriac/celeriac/sessions"
)

// Errors.
var (
	ErrConfig  = errors.New("forwardauth: invalid config")
	ErrStarted = errors.New("forwardauth: already started")
)

// Config configures the service.
type Config struct {
	// Addr is the listen address; default 127.0.0.1:8081. Keep it private:
	// the proxy is the only client that should reach it.
	Addr string
	// Store loads sessions. Required.
	Store sessions.Store
	// Users checks logins. Required.
	Users *sessions.Users
	// CookieName is SESSION_COOKIE_NAME; default sessionid.
	CookieName string
	// UserHeader and HashHeader name the response headers; defaults
	// X-User-Id and X-Session-Hash.
	UserHeader, HashHeader string
	// Logger receives failures, and rejected logins at debug level; nil
	// discards.
	Logger *slog.Logger
}

// Server is the forward-auth HTTP service.
type Server struct {
	cfg  Config
	http *http.Server

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{}
	err  error
}

// New checks cfg and applies defaults.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Config.Store is required", ErrConfig)
	}
	if cfg.Users == nil {
		return nil, fmt.Errorf("%w: Config.Users is required", ErrConfig)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8081"
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "sessionid"
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = "X-User-Id"
	}
	if cfg.HashHeader == "" {
		cfg.HashHeader = "X-Session-Hash"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler serves /auth and /healthz; use it to mount the check elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", s.auth)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Start listens on Addr and serves in the background until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("forwardauth: listen: %w", err)
	}
	s.ln, s.done = ln, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.cfg.Logger.Error("forwardauth: serve failed", slog.Any("error", err))
		}
	}()
	s.cfg.Logger.Info("forwardauth: listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// Addr is the bound address once started (useful with port 0).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting, waits for in-flight checks (or ctx) and for
// the serving goroutine to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.err)
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	cookie := sessions.CookieValue(r, s.cfg.CookieName)
	if cookie == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	sess, err := s.cfg.Store.Load(r.Context(), cookie)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	u, err := s.cfg.Users.Check(r.Context(), sess)
	if err != nil {
		if errors.Is(err, sessions.ErrAnonymous) {
			s.cfg.Logger.Debug("forwardauth: rejected", slog.Any("reason", err))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.unavailable(w, r, err)
		return
	}
	sum := sha256.Sum256([]byte(sess.Key()))
	h.Set(s.cfg.UserHeader, u.ID)
	h.Set(s.cfg.HashHeader, hex.EncodeToString(sum[:]))
	w.WriteHeader(http.StatusOK)
}

func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The proxy hung up; nobody reads this answer and nothing failed.
		s.cfg.Logger.Debug("forwardauth: client went away", slog.Any("error", err))
	} else {
		s.cfg.Logger.Error("forwardauth: backend failed", slog.Any("error", err))
	}
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
}
