package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// MemcachedConfig describes a Django PyMemcacheCache
// (django.core.cache.backends.memcached.PyMemcacheCache).
type MemcachedConfig struct {
	// Client talks to the cache's servers (LOCATION). Required. Django and
	// gomemcache pick servers differently, so use one server, or put
	// sessions on a single-server alias.
	Client *memcache.Client
	// KeyPrefix is the cache's KEY_PREFIX; default empty.
	KeyPrefix string
	// Version is the cache's VERSION; default 1.
	Version int
}

// flagPickle is pymemcache's serde flag for a pickled value (others mark
// bytes, text and integers, which a session dict never is).
const flagPickle = 1

// MemcachedCache reads and writes session dicts as Django's
// PyMemcacheCache stores them: a pickle with flags=1.
type MemcachedCache struct{ cfg MemcachedConfig }

var _ Cache = (*MemcachedCache)(nil)

// NewMemcachedCache checks cfg and applies defaults.
func NewMemcachedCache(cfg MemcachedConfig) (*MemcachedCache, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("%w: MemcachedConfig.Client is required", ErrConfig)
	}
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	return &MemcachedCache{cfg: cfg}, nil
}

func (c *MemcachedCache) key(k string) string { return MakeKey(c.cfg.KeyPrefix, c.cfg.Version, k) }

// gomemcache takes no context; honour a cancelled one before each call.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}

func (c *MemcachedCache) Get(ctx context.Context, key string) (map[string]any, bool, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, false, err
	}
	it, err := c.cfg.Client.Get(c.key(key))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: memcached get: %w", ErrBackend, err)
	}
	if it.Flags&flagPickle == 0 {
		return nil, false, fmt.Errorf("sessions: memcached item has flags %d, not a pickled dict", it.Flags)
	}
	m, err := decodeCacheValue(it.Value)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// expiration is Django's BaseMemcachedCache.get_backend_timeout: memcached
// reads more than 30 days as an absolute Unix time; 0 would mean "never",
// so an expired value gets -1 (gone at once).
func expiration(ttl time.Duration) int32 {
	secs := int64(ttl / time.Second)
	switch {
	case secs <= 0:
		return -1
	case secs > 30*24*3600:
		return int32(time.Now().Unix() + secs)
	}
	return int32(secs)
}

func (c *MemcachedCache) item(key string, v map[string]any, ttl time.Duration) (*memcache.Item, error) {
	b, err := encodeCacheValue(CachePickle, v)
	if err != nil {
		return nil, err
	}
	return &memcache.Item{Key: c.key(key), Value: b, Flags: flagPickle, Expiration: expiration(ttl)}, nil
}

func (c *MemcachedCache) store(ctx context.Context, op func(*memcache.Item) error, key string, v map[string]any, ttl time.Duration) (bool, error) {
	if err := ctxErr(ctx); err != nil {
		return false, err
	}
	it, err := c.item(key, v, ttl)
	if err != nil {
		return false, err
	}
	err = op(it)
	if errors.Is(err, memcache.ErrNotStored) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: memcached: %w", ErrBackend, err)
	}
	return true, nil
}

func (c *MemcachedCache) Set(ctx context.Context, key string, v map[string]any, ttl time.Duration) error {
	_, err := c.store(ctx, c.cfg.Client.Set, key, v, ttl)
	return err
}

func (c *MemcachedCache) Add(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error) {
	return c.store(ctx, c.cfg.Client.Add, key, v, ttl)
}

func (c *MemcachedCache) Replace(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error) {
	return c.store(ctx, c.cfg.Client.Replace, key, v, ttl)
}

func (c *MemcachedCache) Delete(ctx context.Context, key string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	err := c.cfg.Client.Delete(c.key(key))
	if err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return fmt.Errorf("%w: memcached delete: %w", ErrBackend, err)
	}
	return nil
}
