package sessions

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrAnonymous means the session holds no valid login. The error's text
// says why (no user id, backend not allowed, user gone or inactive,
// password changed).
var ErrAnonymous = errors.New("sessions: not logged in")

// AnonymousError is an ErrAnonymous with its reason.
type AnonymousError struct {
	Reason string
	// HashMismatch: the user exists but the session's auth hash no longer
	// matches the password (it was changed). Django flushes such a session.
	HashMismatch bool
}

func (e *AnonymousError) Error() string        { return "sessions: not logged in: " + e.Reason }
func (e *AnonymousError) Is(target error) bool { return target == ErrAnonymous }

func anonymous(format string, args ...any) error {
	return &AnonymousError{Reason: fmt.Sprintf(format, args...)}
}

// Backends Django ships whose users are checked the way Users checks them.
const (
	ModelBackend          = "django.contrib.auth.backends.ModelBackend"
	AllowAllUsersBackend  = "django.contrib.auth.backends.AllowAllUsersModelBackend"
	authHashSalt          = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
	defaultUserTable      = "auth_user"
	defaultUserCacheLimit = 100_000
)

// UsersConfig configures a login check.
type UsersConfig struct {
	// DB is the Django database holding the user table. Required.
	DB *pgxpool.Pool
	// Keys are SECRET_KEY and SECRET_KEY_FALLBACKS: the auth hash is
	// accepted under any of them (Django 4.1.8+ behaviour).
	Keys signing.Keys
	// AcceptSHA1 accepts the SHA-1 auth hash Django 3.1/3.2 also accept.
	AcceptSHA1 bool
	// Table is the user table (AUTH_USER_MODEL's db_table); default
	// auth_user. It must have the columns id, password and is_active.
	Table string
	// Backends is AUTHENTICATION_BACKENDS: a session naming any other
	// backend is anonymous. Default: ModelBackend only. Users of
	// AllowAllUsersModelBackend are not required to be active, as in Django.
	Backends []string
	// CacheTTL keeps each user's password hash and is_active for this long
	// to spare a database query per check. Zero (the default) reads the row
	// every time. With a TTL, a password change or deactivation takes up to
	// TTL to reject old sessions in this process (Forget ends it at once);
	// logouts are unaffected since the session itself is always read.
	CacheTTL time.Duration
	// Logger receives debug lines on rejected logins; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// User is a logged-in user as the session names it.
type User struct {
	ID      string // _auth_user_id: the primary key as text
	Backend string // _auth_user_backend
}

// Users checks sessions the way django.contrib.auth.get_user does.
type Users struct {
	cfg   UsersConfig
	query string
	macs  []func() hash.Hash // one HMAC per accepted key and algorithm

	mu    sync.Mutex
	cache map[string]userRow
}

type userRow struct {
	password string
	active   bool
	found    bool
	at       time.Time
}

// NewUsers checks cfg and applies defaults.
func NewUsers(cfg UsersConfig) (*Users, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("%w: UsersConfig.DB is required", ErrConfig)
	}
	if len(cfg.Keys.Current) == 0 {
		return nil, fmt.Errorf("%w: UsersConfig.Keys.Current (SECRET_KEY) is required", ErrConfig)
	}
	if cfg.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: UsersConfig.CacheTTL %s is negative", ErrConfig, cfg.CacheTTL)
	}
	if cfg.Table == "" {
		cfg.Table = defaultUserTable
	}
	if len(cfg.Backends) == 0 {
		cfg.Backends = []string{ModelBackend}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u := &Users{cfg: cfg, cache: map[string]userRow{}}
	// The id arrives as text; pgx sends a string parameter in text format,
	// so PostgreSQL parses it as whatever type the key column has (integer
	// or UUID) and the primary-key index is used.
	u.query = "SELECT password, is_active FROM " + pgx.Identifier(strings.Split(cfg.Table, ".")).Sanitize() +
		" WHERE id = $1"
	for _, k := range append([][]byte{cfg.Keys.Current}, cfg.Keys.Fallbacks...) {
		u.macs = append(u.macs, hmacFactory(sha256.New, signing.DeriveKey(signing.SHA256, authHashSalt, k)))
		if cfg.AcceptSHA1 {
			u.macs = append(u.macs, hmacFactory(sha1.New, signing.DeriveKey(signing.SHA1, authHashSalt, k)))
		}
	}
	return u, nil
}

func hmacFactory(h func() hash.Hash, key []byte) func() hash.Hash {
	return func() hash.Hash { return hmac.New(h, key) }
}

// Check returns the session's user if Django would consider it logged in:
// user id and an allowed backend present, the user exists (and is active,
// for ModelBackend), and _auth_user_hash matches the user's current
// password hash under SECRET_KEY or a fallback. Otherwise the error is an
// *AnonymousError, or wraps ErrBackend if the database failed. Check never
// modifies the session; Django would flush it on a hash mismatch, which the
// Middleware does.
func (u *Users) Check(ctx context.Context, s *Session) (User, error) {
	var id string
	switch v := s.data[KeyUserID].(type) {
	case string:
		id = v
	case int64: // sessions written by very old Django releases
		id = strconv.FormatInt(v, 10)
	}
	if id == "" {
		return User{}, anonymous("no user id")
	}
	backend, _ := s.data[KeyUserBackend].(string)
	if !slices.Contains(u.cfg.Backends, backend) {
		return User{}, anonymous("backend %q not allowed", backend)
	}
	row, err := u.row(ctx, id)
	if err != nil {
		return User{}, err
	}
	if !row.found {
		return User{}, anonymous("user %s does not exist", id)
	}
	if !row.active && backend != AllowAllUsersBackend {
		return User{}, anonymous("user %s is inactive", id)
	}
	h, _ := s.data[KeyUserHash].(string)
	if h == "" || !u.hashMatches(h, row.password) {
		return User{}, &AnonymousError{Reason: "session auth hash does not match user " + id + "'s password", HashMismatch: true}
	}
	return User{ID: id, Backend: backend}, nil
}

func (u *Users) hashMatches(h, password string) bool {
	ok := false
	for _, m := range u.macs {
		mac := m()
		mac.Write([]byte(password))
		// Test every key so the time taken does not say which matched.
		if hmacEqualHex(h, mac.Sum(nil)) {
			ok = true
		}
	}
	return ok
}

// Forget drops a user's cached row, so the next check reads the database:
// the explicit revocation hook to call when a password or is_active
// changes.
func (u *Users) Forget(id string) {
	u.mu.Lock()
	delete(u.cache, id)
	u.mu.Unlock()
}

func (u *Users) row(ctx context.Context, id string) (userRow, error) {
	now := u.cfg.Now()
	if u.cfg.CacheTTL > 0 {
		u.mu.Lock()
		r, ok := u.cache[id]
		u.mu.Unlock()
		if ok && now.Sub(r.at) < u.cfg.CacheTTL {
			return r, nil
		}
	}
	r := userRow{at: now, found: true}
	err := u.cfg.DB.QueryRow(ctx, u.query, id).Scan(&r.password, &r.active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.found = false
	case isBadID(err):
		// "abc" for an integer key: Django's to_python would refuse it too.
		return userRow{}, anonymous("user id %q is not a valid key", id)
	case err != nil:
		return userRow{}, fmt.Errorf("%w: load user: %w", ErrBackend, err)
	}
	if u.cfg.CacheTTL > 0 && r.found {
		u.mu.Lock()
		if len(u.cache) >= defaultUserCacheLimit {
			clear(u.cache) // crude but bounded; entries are cheap to refetch
		}
		u.cache[id] = r
		u.mu.Unlock()
	}
	return r, nil
}

// isBadID reports PostgreSQL refusing the id's text for the key's type.
func isBadID(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "22P02" || pe.Code == "22003")
}
