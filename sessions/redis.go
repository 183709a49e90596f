package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/celeriac/celeriac/sessions/signing"
	"github.com/redis/go-redis/v9"
)

// RedisConfig describes a django-redis cache (django_redis.cache.RedisCache).
type RedisConfig struct {
	// Client talks to the cache's Redis (LOCATION). Required.
	Client redis.UniversalClient
	// KeyPrefix is the cache's KEY_PREFIX; default empty.
	KeyPrefix string
	// Version is the cache's VERSION; default 1.
	Version int
	// Serializer is OPTIONS.SERIALIZER for writes: pickle (django-redis's
	// default) or json. Reads accept both.
	Serializer CacheSerializer
	// Zlib mirrors OPTIONS.COMPRESSOR = "django_redis.compressors.zlib.ZlibCompressor".
	Zlib bool
}

// RedisCache reads and writes session dicts in a Redis that django-redis
// uses, byte for byte as django-redis would.
type RedisCache struct{ cfg RedisConfig }

var _ Cache = (*RedisCache)(nil)

// NewRedisCache checks cfg and applies defaults.
func NewRedisCache(cfg RedisConfig) (*RedisCache, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("%w: RedisConfig.Client is required", ErrConfig)
	}
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	switch cfg.Serializer {
	case "":
		cfg.Serializer = CachePickle
	case CachePickle, CacheJSON:
	default:
		return nil, fmt.Errorf("%w: RedisConfig.Serializer %q (want pickle or json)", ErrConfig, cfg.Serializer)
	}
	return &RedisCache{cfg: cfg}, nil
}

func (c *RedisCache) key(k string) string { return MakeKey(c.cfg.KeyPrefix, c.cfg.Version, k) }

func (c *RedisCache) Get(ctx context.Context, key string) (map[string]any, bool, error) {
	b, err := c.cfg.Client.Get(ctx, c.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: redis GET: %w", ErrBackend, err)
	}
	m, err := decodeCacheValue(b)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// encode is django-redis's DefaultClient.encode for a dict: serialize, then
// compress (its zlib compressor skips values of 15 bytes or less).
func (c *RedisCache) encode(v map[string]any) ([]byte, error) {
	b, err := encodeCacheValue(c.cfg.Serializer, v)
	if err != nil {
		return nil, err
	}
	if c.cfg.Zlib && len(b) > 15 {
		b = signing.Deflate(b)
	}
	return b, nil
}

func (c *RedisCache) set(ctx context.Context, key string, v map[string]any, ttl time.Duration, mode string) (bool, error) {
	if ttl <= 0 {
		// django-redis cannot send a non-positive PX: it deletes instead,
		// and an add of an already-expired value stores nothing.
		if mode == "NX" {
			n, err := c.cfg.Client.Exists(ctx, c.key(key)).Result()
			if err != nil {
				return false, fmt.Errorf("%w: redis EXISTS: %w", ErrBackend, err)
			}
			return n == 0, nil
		}
		n, err := c.cfg.Client.Del(ctx, c.key(key)).Result()
		if err != nil {
			return false, fmt.Errorf("%w: redis DEL: %w", ErrBackend, err)
		}
		return mode == "" || n > 0, nil
	}
	b, err := c.encode(v)
	if err != nil {
		return false, err
	}
	ttl = ttl.Truncate(time.Millisecond) // django-redis sends PX in whole milliseconds
	if ttl <= 0 {
		ttl = time.Millisecond
	}
	_, err = c.cfg.Client.SetArgs(ctx, c.key(key), b, redis.SetArgs{Mode: mode, TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil // NX or XX condition not met
	}
	if err != nil {
		return false, fmt.Errorf("%w: redis SET: %w", ErrBackend, err)
	}
	return true, nil
}

func (c *RedisCache) Set(ctx context.Context, key string, v map[string]any, ttl time.Duration) error {
	_, err := c.set(ctx, key, v, ttl, "")
	return err
}

func (c *RedisCache) Add(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error) {
	return c.set(ctx, key, v, ttl, "NX")
}

func (c *RedisCache) Replace(ctx context.Context, key string, v map[string]any, ttl time.Duration) (bool, error) {
	return c.set(ctx, key, v, ttl, "XX")
}

func (c *RedisCache) Delete(ctx context.Context, key string) error {
	if err := c.cfg.Client.Del(ctx, c.key(key)).Err(); err != nil {
		return fmt.Errorf("%w: redis DEL: %w", ErrBackend, err)
	}
	return nil
}
