package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// revokedKey is the sorted set of revoked task ids ("celeriac:revoked"),
// scored by the unix time each revocation expires. Celery keeps
// revocations only in worker memory; keeping them here lets them survive
// restarts and reach workers started later.
func (b *Backend) revokedKey() string { return b.prefix + "revoked" }

// revokedMax bounds the set as Celery bounds its in-memory one.
const revokedMax = 50000

// Ping checks the connection (for readiness probes).
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.client.Ping(ctx).Err()
}

// AddRevoked records ids as revoked for ttl, dropping expired entries and
// the oldest beyond 50,000. It makes the backend a worker.RevokedStore.
func (b *Backend) AddRevoked(ctx context.Context, ids []string, ttl time.Duration) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	now := b.now()
	exp := float64(now.Add(ttl).Unix())
	members := make([]goredis.Z, len(ids))
	for i, id := range ids {
		members[i] = goredis.Z{Score: exp, Member: id}
	}
	_, err := b.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZAdd(ctx, b.revokedKey(), members...)
		p.ZRemRangeByScore(ctx, b.revokedKey(), "-inf", "("+strconv.FormatInt(now.Unix(), 10))
		p.ZRemRangeByRank(ctx, b.revokedKey(), 0, -revokedMax-1)
		p.Expire(ctx, b.revokedKey(), ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: record revoked ids: %w", err)
	}
	return nil
}

// LoadRevoked returns the ids whose revocation has not expired.
func (b *Backend) LoadRevoked(ctx context.Context) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	ids, err := b.client.ZRangeByScore(ctx, b.revokedKey(), &goredis.ZRangeBy{Min: strconv.FormatInt(b.now().Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: load revoked ids: %w", err)
	}
	return ids, nil
}
