package dbproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/dbproxy/sqlclass"
)

// queryCache keeps the results of read-only simple queries on configured
// tables in Redis. Each table has a generation counter that is part of
// every cache key over it; a write to the table through the proxy bumps the
// counter, before the write runs and again when its transaction ends, so a
// result read before the commit can never be served after it.
type queryCache struct {
	p      *Proxy
	rdb    *redis.Client
	tables map[string]bool
	ttl    time.Duration

	hits, misses, invalidations, errors atomic.Int64
}

// maxCachedResult bounds what one cached result may hold.
const maxCachedResult = 1 << 20

func newQueryCache(p *Proxy) (*queryCache, error) {
	opt, err := redis.ParseURL(p.cfg.CacheRedis)
	if err != nil {
		return nil, err
	}
	opt.ReadTimeout, opt.WriteTimeout, opt.DialTimeout = 200*time.Millisecond, 200*time.Millisecond, time.Second
	qc := &queryCache{p: p, rdb: redis.NewClient(opt), tables: map[string]bool{}, ttl: p.cfg.CacheTTL}
	for _, t := range p.cfg.CacheTables {
		qc.tables[strings.ToLower(t)] = true
	}
	return qc, nil
}

func (qc *queryCache) close() { _ = qc.rdb.Close() }

func (qc *queryCache) genKey(db, table string) string {
	return qc.p.cfg.CachePrefix + "gen:" + db + ":" + table
}

// cacheable reports the tables of a single read statement when all of them
// are cached ones.
func (qc *queryCache) cacheable(r sqlclass.Result) []string {
	if r.Primary || r.Statements != 1 || len(r.Tables) == 0 {
		return nil
	}
	for _, t := range r.Tables {
		if !qc.tables[t] {
			return nil
		}
	}
	return r.Tables
}

// key builds the cache key of sql for c under the tables' current
// generations; the client's settings are part of it since they shape the
// result's text (TimeZone, DateStyle…).
func (qc *queryCache) key(ctx context.Context, c *client, sql string, tables []string) (string, error) {
	keys := make([]string, len(tables))
	for i, t := range tables {
		keys[i] = qc.genKey(c.db, t)
	}
	gens, err := qc.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(c.user + "\x00" + sql + "\x00"))
	for _, k := range trackedParams {
		h.Write([]byte(k + "=" + c.params[k] + "\x00"))
	}
	for _, g := range gens {
		s, _ := g.(string)
		h.Write([]byte(s + ","))
	}
	return qc.p.cfg.CachePrefix + "q:" + c.db + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// lookup answers q from the cache if it can; it returns the key to fill
// on a miss ("" when the statement is not cacheable).
func (c *client) cacheLookup(ctx context.Context, q *pgproto3.Query) (hit bool, fill string) {
	qc := c.p.cache
	tables := qc.cacheable(sqlclass.Classify(q.String))
	if tables == nil {
		return false, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	key, err := qc.key(ctx, c, q.String, tables)
	if err != nil {
		qc.errors.Add(1)
		return false, ""
	}
	b, err := qc.rdb.Get(ctx, key).Bytes()
	if err != nil {
		if err != redis.Nil {
			qc.errors.Add(1)
			return false, ""
		}
		qc.misses.Add(1)
		c.p.m.cacheMisses.Inc()
		return false, key
	}
	qc.hits.Add(1)
	c.p.m.cacheHits.Inc()
	buf, _ := (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(b)
	if _, err := c.conn.Write(buf); err != nil {
		return true, ""
	}
	return true, ""
}

// store saves a complete result gathered while relaying.
func (c *client) cacheStore(ctx context.Context, key string, result []byte) {
	qc := c.p.cache
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := qc.rdb.Set(ctx, key, result, qc.ttl).Err(); err != nil {
		qc.errors.Add(1)
	}
}

// invalidate bumps the generation of every cached table sql names (as any
// word: conservative for writes through functions or CTEs).
func (c *client) cacheInvalidate(ctx context.Context, sql string) {
	qc := c.p.cache
	r := sqlclass.Classify(sql)
	if !r.Primary {
		return
	}
	lower := strings.ToLower(sql)
	for t := range qc.tables {
		if strings.Contains(lower, t) && !slices.Contains(c.dirty, t) {
			c.dirty = append(c.dirty, t)
		}
	}
	qc.bump(ctx, c.db, c.dirty)
}

func (qc *queryCache) bump(ctx context.Context, db string, tables []string) {
	if len(tables) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	pipe := qc.rdb.Pipeline()
	for _, t := range tables {
		pipe.Incr(ctx, qc.genKey(db, t))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// The write goes ahead; the TTL bounds how long a stale entry lives.
		qc.errors.Add(1)
		qc.p.cfg.Logger.Warn("dbproxy: cache invalidation failed", "err", err, "tables", tables)
		return
	}
	qc.invalidations.Add(int64(len(tables)))
	qc.p.m.cacheInvalidations.Add(float64(len(tables)))
}

func (qc *queryCache) stats() [][]string {
	return [][]string{
		{"hits", strconv.FormatInt(qc.hits.Load(), 10)},
		{"misses", strconv.FormatInt(qc.misses.Load(), 10)},
		{"invalidations", strconv.FormatInt(qc.invalidations.Load(), 10)},
		{"errors", strconv.FormatInt(qc.errors.Load(), 10)},
	}
}
