package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/celeriac/celeriac/sessions/pickle"
	"github.com/celeriac/celeriac/sessions/pyjson"
	"github.com/celeriac/celeriac/sessions/signing"
)

// Cache is a Django cache holding session dicts, addressed by the logical
// key the session store builds; the implementation applies Django's key
// function (KEY_PREFIX:VERSION:key) and the cache backend's serialization.
// Errors from the server wrap ErrBackend; an entry that exists but cannot be
// decoded is reported with another error, and the session store treats it
// as absent, as Django does.
type Cache interface {
	Get(ctx context.Context, key string) (map[string]any, bool, error)
	Set(ctx context.Context, key string, v map[string]any, ttl time.Duration) error
	// Add stores only if the key is absent (cache.add); false if present.
	Add(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error)
	// Replace stores only if the key is present; false if absent.
	Replace(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
}

// Logical cache key prefixes of Django's cache and cached_db stores.
const (
	cacheKeyPrefix    = "django.contrib.sessions.cache"
	cachedDBKeyPrefix = "django.contrib.sessions.cached_db"
)

// MakeKey is Django's default KEY_FUNCTION: "<prefix>:<version>:<key>".
func MakeKey(prefix string, version int, key string) string {
	return prefix + ":" + strconv.Itoa(version) + ":" + key
}

// CacheSerializer is how a cache backend turns a dict into bytes.
type CacheSerializer string

const (
	CachePickle CacheSerializer = "pickle" // django-redis's and PyMemcacheCache's default
	CacheJSON   CacheSerializer = "json"   // django_redis.serializers.json.JSONSerializer
)

// decodeCacheValue reads a cached session whatever the configured
// serializer: zlib is inflated first, then the bytes are a pickle (PROTO
// opcode first) or JSON. Reading both costs nothing and lets an operator
// switch serializers without logging everyone out.
func decodeCacheValue(b []byte) (map[string]any, error) {
	if len(b) > 1 && b[0] == 0x78 { // zlib header, django-redis ZlibCompressor
		if z, err := signing.Inflate(b, 8<<20); err == nil {
			b = z
		}
	}
	var v any
	var err error
	if len(b) > 0 && b[0] == 0x80 {
		v, err = pickle.Unmarshal(b)
	} else {
		v, err = pyjson.Unmarshal(b)
	}
	if err != nil {
		return nil, err
	}
	return asDict(v)
}

func encodeCacheValue(s CacheSerializer, v map[string]any) ([]byte, error) {
	if s == CacheJSON {
		return pyjson.Marshal(v, pyjson.Spaced)
	}
	return pickle.Marshal(v)
}

// cacheStore is django.contrib.sessions.backends.cache: the dict lives in
// the cache only, unsigned; whoever can write the cache can forge sessions.
type cacheStore struct {
	cfg    Config
	prefix string
}

func newCacheStore(cfg Config, prefix string) (*cacheStore, error) {
	if cfg.Cache == nil {
		return nil, fmt.Errorf("%w: Config.Cache is required for the %s engine", ErrConfig, cfg.Engine)
	}
	return &cacheStore{cfg: cfg, prefix: prefix}, nil
}

// get reads an entry; a decode failure counts as a miss.
func (st *cacheStore) get(ctx context.Context, key string) (map[string]any, bool, error) {
	m, ok, err := st.cfg.Cache.Get(ctx, st.prefix+key)
	if err != nil {
		if errors.Is(err, ErrBackend) {
			return nil, false, err
		}
		st.cfg.Logger.Debug("sessions: cached session undecodable", slog.Any("error", err))
		return nil, false, nil
	}
	return m, ok, nil
}

func (st *cacheStore) Load(ctx context.Context, key string) (*Session, error) {
	if !validKey(key) {
		return NewSession(), nil
	}
	m, ok, err := st.get(ctx, key)
	if err != nil || !ok {
		return NewSession(), err
	}
	return newLoaded(key, m), nil
}

func (st *cacheStore) Save(ctx context.Context, s *Session) error {
	ttl := s.ExpiryAge(st.cfg.Now(), st.cfg.CookieAge)
	if s.key == "" {
		if err := st.create(ctx, s, ttl); err != nil {
			return err
		}
	} else {
		ok, err := st.cfg.Cache.Replace(ctx, st.prefix+s.key, s.data, ttl)
		if err != nil {
			return err
		}
		if !ok {
			return ErrSessionGone
		}
	}
	return st.finishSave(ctx, s)
}

func (st *cacheStore) create(ctx context.Context, s *Session, ttl time.Duration) error {
	for range 10 {
		key := NewKey()
		ok, err := st.cfg.Cache.Add(ctx, st.prefix+key, s.data, ttl)
		if err != nil {
			return err
		}
		if ok {
			s.key = key
			return nil
		}
	}
	return fmt.Errorf("%w: could not create a unique session key", ErrBackend)
}

func (st *cacheStore) finishSave(ctx context.Context, s *Session) error {
	if s.oldKey != "" {
		if err := st.Delete(ctx, s.oldKey); err != nil {
			return err
		}
		s.oldKey = ""
	}
	s.modified = false
	return nil
}

func (st *cacheStore) Delete(ctx context.Context, key string) error {
	return st.cfg.Cache.Delete(ctx, st.prefix+key)
}

// cachedDBStore is django.contrib.sessions.backends.cached_db: writes go to
// the database row first and then to the cache; reads try the cache and
// fall back to the row, refilling the cache.
type cachedDBStore struct {
	db    *dbStore
	cache *cacheStore
	cfg   Config
}

func newCachedDBStore(cfg Config) (*cachedDBStore, error) {
	db, err := newDBStore(cfg)
	if err != nil {
		return nil, err
	}
	c, err := newCacheStore(cfg, cachedDBKeyPrefix)
	if err != nil {
		return nil, err
	}
	return &cachedDBStore{db: db, cache: c, cfg: cfg}, nil
}

func (st *cachedDBStore) Load(ctx context.Context, key string) (*Session, error) {
	if !validKey(key) {
		return NewSession(), nil
	}
	m, ok, err := st.cache.get(ctx, key)
	if err != nil {
		// The database still has the session: a cache outage should not
		// log anyone out.
		st.cfg.Logger.Warn("sessions: cache read failed; using the database", slog.Any("error", err))
	}
	if ok {
		return newLoaded(key, m), nil
	}
	s, expire, err := st.db.load(ctx, key)
	if err != nil || s.key == "" {
		return s, err
	}
	if ttl := expire.Sub(st.cfg.Now()).Truncate(time.Second); ttl > 0 {
		if err := st.cfg.Cache.Set(ctx, st.cache.prefix+key, s.data, ttl); err != nil {
			st.cfg.Logger.Warn("sessions: cache refill failed", slog.Any("error", err))
		}
	}
	return s, nil
}

func (st *cachedDBStore) Save(ctx context.Context, s *Session) error {
	old := s.oldKey
	s.oldKey = "" // deleted below from both the table and the cache
	if err := st.db.Save(ctx, s); err != nil {
		s.oldKey = old
		return err
	}
	ttl := s.ExpiryAge(st.cfg.Now(), st.cfg.CookieAge)
	if err := st.cfg.Cache.Set(ctx, st.cache.prefix+s.key, s.data, ttl); err != nil {
		return err
	}
	if old != "" {
		return st.Delete(ctx, old)
	}
	return nil
}

func (st *cachedDBStore) Delete(ctx context.Context, key string) error {
	if err := st.db.Delete(ctx, key); err != nil {
		return err
	}
	return st.cache.Delete(ctx, key)
}
