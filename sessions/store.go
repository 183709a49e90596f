package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/celeriac/celeriac/sessions/pickle"
	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors. Backend failures wrap ErrBackend; a session deleted while a
// request was modifying it is ErrSessionGone (Django's UpdateError, which
// it reports as SessionInterrupted).
var (
	ErrConfig      = errors.New("sessions: invalid config")
	ErrBackend     = errors.New("sessions: session store failed")
	ErrSessionGone = errors.New("sessions: session was deleted during the request")
)

// Store loads and saves sessions the way one Django SESSION_ENGINE does.
// Every method is safe for concurrent use.
type Store interface {
	// Load returns the session a cookie value names. Like Django, a
	// missing, expired, badly signed or undecodable session yields a new
	// empty session and no error; an error means the backend failed.
	Load(ctx context.Context, cookie string) (*Session, error)
	// Save writes s, giving it a key first if it has none and deleting the
	// key it had before a Flush or CycleKey. Afterwards s.Key() is the
	// cookie value to send.
	Save(ctx context.Context, s *Session) error
	// Delete removes the session with this key; a missing one is no error.
	Delete(ctx context.Context, key string) error
}

// Engine is a Django SESSION_ENGINE.
type Engine string

const (
	EngineSignedCookies Engine = "signed_cookies"
	EngineDB            Engine = "db"
	EngineCache         Engine = "cache"
	EngineCachedDB      Engine = "cached_db"
)

// ParseEngine accepts Django's dotted SESSION_ENGINE values
// ("django.contrib.sessions.backends.cache") or the short names.
func ParseEngine(s string) (Engine, error) {
	short := strings.TrimPrefix(s, "django.contrib.sessions.backends.")
	switch e := Engine(short); e {
	case EngineSignedCookies, EngineDB, EngineCache, EngineCachedDB:
		return e, nil
	}
	return "", fmt.Errorf("%w: unknown session engine %q (want signed_cookies, db, cache or cached_db)", ErrConfig, s)
}

// Serializer is Django's SESSION_SERIALIZER for the signed_cookies, db and
// cached_db payloads.
type Serializer string

const (
	SerializerJSON   Serializer = "json"   // django.contrib.sessions.serializers.JSONSerializer (the default)
	SerializerPickle Serializer = "pickle" // django.contrib.sessions.serializers.PickleSerializer
)

// Config configures a Store.
type Config struct {
	// Engine selects the store. Required.
	Engine Engine
	// Keys are SECRET_KEY and SECRET_KEY_FALLBACKS; required for every
	// engine but cache, whose entries are not signed.
	Keys signing.Keys
	// AcceptSHA1 accepts what Django 3.1/3.2 still read during an upgrade:
	// SHA-1 signatures and the pre-3.1 session encoding.
	AcceptSHA1 bool
	// Serializer is SESSION_SERIALIZER; default json. Reading accepts
	// either, since the pickle reader executes nothing.
	Serializer Serializer
	// CookieAge is SESSION_COOKIE_AGE; default two weeks.
	CookieAge time.Duration
	// KeySalt is the salt of db and cached_db payloads:
	// "django.contrib.sessions." + the store class's __qualname__. Default
	// "django.contrib.sessions.SessionStore"; a project that subclasses
	// the store under another class name must set it.
	KeySalt string
	// DB is the Django database, for db and cached_db.
	DB *pgxpool.Pool
	// Table is the session table; default django_session.
	Table string
	// Cache is the session cache (SESSION_CACHE_ALIAS), for cache and
	// cached_db: a *RedisCache or *MemcachedCache.
	Cache Cache
	// Logger receives debug lines on rejected sessions; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Salts Django uses for session payloads.
const (
	SaltSignedCookies = "django.contrib.sessions.backends.signed_cookies"
	SaltSessionStore  = "django.contrib.sessions.SessionStore"
)

// NewStore returns the store cfg.Engine names, or an error naming the
// missing or invalid field.
func NewStore(cfg Config) (Store, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	switch cfg.Engine {
	case EngineSignedCookies:
		return newSignedCookieStore(cfg)
	case EngineDB:
		return newDBStore(cfg)
	case EngineCache:
		return newCacheStore(cfg, cacheKeyPrefix)
	case EngineCachedDB:
		return newCachedDBStore(cfg)
	}
	return nil, fmt.Errorf("%w: Config.Engine %q", ErrConfig, cfg.Engine)
}

func (cfg *Config) defaults() error {
	if _, err := ParseEngine(string(cfg.Engine)); err != nil {
		return fmt.Errorf("Config.Engine: %w", err)
	}
	switch cfg.Serializer {
	case "":
		cfg.Serializer = SerializerJSON
	case SerializerJSON, SerializerPickle:
	default:
		return fmt.Errorf("%w: Config.Serializer %q (want json or pickle)", ErrConfig, cfg.Serializer)
	}
	if cfg.CookieAge == 0 {
		cfg.CookieAge = 14 * 24 * time.Hour
	}
	if cfg.CookieAge < 0 {
		return fmt.Errorf("%w: Config.CookieAge %s is negative", ErrConfig, cfg.CookieAge)
	}
	if cfg.KeySalt == "" {
		cfg.KeySalt = SaltSessionStore
	}
	if cfg.Table == "" {
		cfg.Table = "django_session"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

func (cfg *Config) signer(salt string) (*signing.Signer, error) {
	if len(cfg.Keys.Current) == 0 {
		return nil, fmt.Errorf("%w: Config.Keys.Current (SECRET_KEY) is required for the %s engine", ErrConfig, cfg.Engine)
	}
	ser := signing.Serializer(signing.JSON{})
	if cfg.Serializer == SerializerPickle {
		ser = PickleSerializer{}
	}
	s, err := signing.New(signing.Config{
		Keys: cfg.Keys, Salt: salt, AcceptSHA1: cfg.AcceptSHA1,
		Serializer: anySerializer{write: ser}, Now: cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return s, nil
}

// PickleSerializer is Django's PickleSerializer for signed payloads.
type PickleSerializer struct{}

func (PickleSerializer) Marshal(v any) ([]byte, error)      { return pickle.Marshal(v) }
func (PickleSerializer) Unmarshal(data []byte) (any, error) { return pickle.Unmarshal(data) }

// anySerializer writes with the configured serializer and reads either
// format: a pickle starts with the PROTO opcode, JSON never does.
type anySerializer struct{ write signing.Serializer }

func (a anySerializer) Marshal(v any) ([]byte, error) { return a.write.Marshal(v) }

func (a anySerializer) Unmarshal(data []byte) (any, error) {
	if len(data) > 0 && data[0] == 0x80 {
		return pickle.Unmarshal(data)
	}
	return signing.JSON{}.Unmarshal(data)
}

// asDict checks that a decoded payload is a session dict.
func asDict(v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("sessions: payload is %T, not a dict", v)
	}
	return m, nil
}
