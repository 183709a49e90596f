package beat

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The run history lives in Redis so that whichever beat leads next knows
// what has run. Every write goes through advanceScript, which checks the
// writer's fencing token against the largest one seen, atomically with
// the update: a leader that lost its lease (paused, partitioned) and
// comes back cannot advance an entry, so it cannot fire it.
//
// KEYS[1] fence (largest token seen), KEYS[2] last-run hash (name → Unix
// microseconds), KEYS[3] run-count hash. ARGV[1] the token, ARGV[2] "1"
// to count runs (0 when only seeding a new entry), then triples of name,
// expected previous value ("" for none) and new value. Returns {-1} if the
// token is stale, else one 1 (advanced) or 0 (someone else moved it
// first) per triple.
var advanceScript = goredis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok = tonumber(ARGV[1])
if tok < cur then return {-1} end
if tok > cur then redis.call('SET', KEYS[1], ARGV[1]) end
local out = {}
for i = 3, #ARGV, 3 do
  local have = redis.call('HGET', KEYS[2], ARGV[i])
  if have == false then have = '' end
  if have == ARGV[i+1] then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+2])
    if ARGV[2] == '1' then redis.call('HINCRBY', KEYS[3], ARGV[i], 1) end
    out[#out+1] = 1
  else
    out[#out+1] = 0
  end
end
return out
`)

type store struct {
	rdb                goredis.UniversalClient
	fence, last, count string
}

func newStore(rdb goredis.UniversalClient, prefix, name string) *store {
	// One hash tag so the script's keys share a Cluster slot.
	base := prefix + "{" + name + "}:"
	return &store{rdb: rdb, fence: base + "fence", last: base + "last", count: base + "count"}
}

type advance struct {
	name, prev, next string
}

// advance applies the updates under token; it returns ErrStale if a newer
// leader has written, else which updates took.
func (s *store) advance(ctx context.Context, token uint64, count bool, ups []advance) ([]bool, error) {
	argv := make([]any, 0, 2+3*len(ups))
	c := "0"
	if count {
		c = "1"
	}
	argv = append(argv, strconv.FormatUint(token, 10), c)
	for _, u := range ups {
		argv = append(argv, u.name, u.prev, u.next)
	}
	res, err := advanceScript.Run(ctx, s.rdb, []string{s.fence, s.last, s.count}, argv...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("beat: record runs: %w", err)
	}
	if len(res) == 1 && res[0] == -1 {
		return nil, ErrStale
	}
	if len(res) != len(ups) {
		return nil, fmt.Errorf("beat: record runs: %d answers for %d entries", len(res), len(ups))
	}
	ok := make([]bool, len(res))
	for i, r := range res {
		ok[i] = r == 1
	}
	return ok, nil
}

// lastRuns reads every entry's recorded last run.
func (s *store) lastRuns(ctx context.Context) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.last).Result()
	if err != nil {
		return nil, fmt.Errorf("beat: read last runs: %w", err)
	}
	return m, nil
}

func (s *store) lastRun(ctx context.Context, name string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.last, name).Result()
	if err == goredis.Nil {
		return "", nil
	}
	return v, err
}

// RunCount returns how many times the entry has been dispatched.
func (s *store) runCount(ctx context.Context, name string) (int64, error) {
	n, err := s.rdb.HGet(ctx, s.count, name).Int64()
	if err == goredis.Nil {
		return 0, nil
	}
	return n, err
}

func encodeTime(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func decodeTime(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMicro(n), true
}
