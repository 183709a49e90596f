package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Fencing tokens.
//
// Every acquisition of a lock name gets a token larger than every token
// issued before it for that name, so a resource that remembers the largest
// token it has seen can refuse a stale holder (one paused past its lease).
//
// One Redis: INCR of the name's counter, in the same script that takes
// the lock (one round trip for both).
//
// N independent masters: "INCR on a majority and take the max" is wrong.
// With counters A=5, B=3, C=3, holder 1 increments A and B and takes 6;
// holder 2 later increments B and C and takes 5 — smaller than the token
// it must beat. Instead:
//
//  1. read the counter on a majority and take the maximum M;
//  2. write T = M+1 to a majority with "set if greater";
//  3. T is the token once a majority acknowledged exactly T.
//
// Any two majorities intersect, so a later holder's read (step 1) meets at
// least one server holding the earlier holder's T and picks a larger one.
// Both steps run in scripts that first check the lock key still holds our
// value: if our lease ran out and someone else took the lock, those servers
// refuse, our token is not issued, and a token that was issued is never
// overtaken by a stale holder's write (a server that already has a larger
// value reports it and we give up with ErrLost).

var (
	// acquireScript: one Redis. KEYS lock, counter; ARGV value, lease ms,
	// counter TTL ms, "1" to issue a token. -1 when the lock is taken.
	// It also returns the name's mark (KEYS[3]), read under the new lease,
	// so a caller that checks for finished work needs no second trip, and
	// with WithPeek the value of KEYS[4] too:
	// {-1} when taken, else {token, mark or nil, peeked or nil}.
	acquireScript = goredis.NewScript(`
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {-1} end
local t = 0
if ARGV[4] == '1' then
  t = redis.call('INCR', KEYS[2])
  if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
local peek = false
if #KEYS > 3 then peek = redis.call('GET', KEYS[4]) end
return {t, redis.call('GET', KEYS[3]), peek}`)
	// markReleaseScript: one Redis. Marks the name done (KEYS[2] = ARGV[2]
	// for ARGV[3] ms) and deletes the lock (KEYS[1]) if it still holds our
	// value ARGV[1]; 1 if it did.
	markReleaseScript = goredis.NewScript(`
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`)
	// fenceRead: the counter, if we hold the lock here.
	fenceRead = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return tonumber(redis.call('GET', KEYS[2]) or '0')`)
	// fenceRaise: set the counter to ARGV[2] unless it is already larger;
	// returns the counter's value afterwards.
	fenceRaise = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = tonumber(ARGV[2])
if t > cur then
  redis.call('SET', KEYS[2], ARGV[2])
  cur = t
end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return cur`)
)

var (
	errNotOwner = errors.New("lock key does not hold our value")
	errNewer    = errors.New("a newer fencing token exists")
)

// fence issues the token for a lock just acquired on a majority.
func (l *Locker) fence(ctx context.Context, key, value string, until time.Time) (uint64, error) {
	ctx, cancel := context.WithDeadline(ctx, until) // never outlive the lease
	defer cancel()
	return fenceQuorum(ctx, l.clients, l.quorum, []string{key, tokenKey(key)}, value, l.tokenTTLms())
}

// fenceQuorum is steps 1–3 over clients, of which quorum must agree.
func fenceQuorum(ctx context.Context, clients []goredis.UniversalClient, quorum int, keys []string, value string, ttlMs int64) (uint64, error) {
	read, err := onQuorum(ctx, clients, quorum, func(ctx context.Context, c goredis.UniversalClient) (int64, error) {
		v, err := fenceRead.Run(ctx, c, keys, value).Int64()
		if err == nil && v < 0 {
			err = errNotOwner
		}
		return v, err
	})
	if err != nil {
		return 0, err
	}
	var m int64
	for _, v := range read {
		m = max(m, v)
	}
	t := m + 1
	_, err = onQuorum(ctx, clients, quorum, func(ctx context.Context, c goredis.UniversalClient) (int64, error) {
		v, err := fenceRaise.Run(ctx, c, keys, value, t, ttlMs).Int64()
		switch {
		case err != nil:
		case v < 0:
			err = errNotOwner
		case v != t:
			err = errNewer
		}
		return v, err
	})
	if err != nil {
		return 0, err
	}
	return uint64(t), nil
}

// onQuorum runs f on every client at once and returns the first quorum
// successful results. It gives up as soon as a majority can no longer
// succeed: ErrLost when servers said the lock (or the newest token) is not
// ours, ErrNoQuorum when they failed to answer. Calls still running on
// slow servers finish in the background, bounded by the clients' timeouts.
func onQuorum(ctx context.Context, clients []goredis.UniversalClient, quorum int,
	f func(context.Context, goredis.UniversalClient) (int64, error)) ([]int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		v   int64
		err error
	}
	ch := make(chan result, len(clients))
	for _, c := range clients {
		go func() {
			v, err := f(ctx, c)
			ch <- result{v, err}
		}()
	}
	var (
		ok     []int64
		errs   []error
		denied bool
	)
	for range clients {
		r := <-ch
		if r.err == nil {
			if ok = append(ok, r.v); len(ok) >= quorum {
				return ok, nil
			}
			continue
		}
		errs = append(errs, r.err)
		if errors.Is(r.err, errNotOwner) || errors.Is(r.err, errNewer) {
			denied = true
		}
		if len(errs) > len(clients)-quorum {
			break
		}
	}
	if denied {
		return nil, fmt.Errorf("%w: %w", ErrLost, errors.Join(errs...))
	}
	return nil, fmt.Errorf("%w: %w", ErrNoQuorum, errors.Join(errs...))
}

// CheckToken reports whether token is still the newest fencing token
// issued for name, reading the counter on a majority of servers. Use it
// just before an irreversible action ("dispatch only if no one took the
// lock after me"); a resource that stores the largest token it has seen is
// stronger still. A counter that expired (Config.TokenTTL) reads as 0.
func (l *Locker) CheckToken(ctx context.Context, name string, token uint64) (bool, error) {
	if name == "" {
		return false, errors.New("lock: empty lock name")
	}
	key := tokenKey(l.key(name))
	vals, err := onQuorum(ctx, l.clients, l.quorum, func(ctx context.Context, c goredis.UniversalClient) (int64, error) {
		v, err := c.Get(ctx, key).Int64()
		if errors.Is(err, goredis.Nil) {
			return 0, nil
		}
		return v, err
	})
	if err != nil {
		return false, fmt.Errorf("lock %q: check token: %w", name, err)
	}
	var newest int64
	for _, v := range vals {
		newest = max(newest, v)
	}
	return int64(token) >= newest, nil
}
