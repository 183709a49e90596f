package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/redistest"
)

// Ports of this package's private servers (6393-6398 belong to
// backend/redis's tests).
var (
	redlockPorts  = []int{6390, 6391, 6392}
	pausePort     = 7396
	sentinelPorts = [3]int{7390, 7391, 7392} // master, replica, sentinel
	clusterPorts  = []int{7393, 7394, 7395}
	clusterBus    = []int{16393, 16394, 16395}
)

// TestRedlock runs everything that needs three independent masters, in
// order (the last subtest kills one of them).
func TestRedlock(t *testing.T) {
	t.Parallel()
	var servers []*redistest.Server
	var clients []goredis.UniversalClient
	for _, p := range redlockPorts {
		s := redistest.Start(t, p)
		servers = append(servers, s)
		clients = append(clients, privateClient(t, s.Addr))
	}
	counter := sharedClient(t)
	lk := newLocker(t, Config{Clients: clients})
	// A second locker that lists the servers in another order, as another
	// process might.
	lk2 := newLocker(t, Config{Clients: []goredis.UniversalClient{clients[2], clients[0], clients[1]}, Prefix: lk.prefix})

	t.Run("MutualExclusion", func(t *testing.T) {
		tokens := contend(t, ctxFor(t, 60*time.Second), []*Locker{lk, lk2}, counter, "mx", 6, 15)
		assertIncreasing(t, tokens)
	})

	t.Run("Counterexample", func(t *testing.T) {
		ctx := ctxFor(t, 10*time.Second)
		key := lk.key("ce")
		tk := tokenKey(key)
		set := func(vals ...int64) {
			for i, v := range vals {
				if err := clients[i].Set(ctx, tk, v, time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		a, b, c := clients[0], clients[1], clients[2]

		// INCR on a majority and take the max: holder 1 reaches A and B,
		// holder 2 later reaches B and C, and gets a smaller token.
		set(5, 3, 3)
		naive := func(cs ...goredis.UniversalClient) int64 {
			var m int64
			for _, c := range cs {
				m = max(m, c.Incr(ctx, tk).Val())
			}
			return m
		}
		n1, n2 := naive(a, b), naive(b, c)
		if n2 >= n1 {
			t.Fatalf("naive tokens %d then %d: the counterexample did not reproduce", n1, n2)
		}

		// The same two acquisitions with read-max-then-raise.
		set(5, 3, 3)
		hold := func(value string, cs ...goredis.UniversalClient) {
			for _, c := range cs {
				if err := c.Set(ctx, key, value, time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		hold("holder1", a, b)
		t1, err := fenceQuorum(ctx, []goredis.UniversalClient{a, b}, 2, []string{key, tk}, "holder1", 60000)
		if err != nil {
			t.Fatal(err)
		}
		a.Del(ctx, key)
		b.Del(ctx, key) // holder 1's lease is over
		hold("holder2", b, c)
		t2, err := fenceQuorum(ctx, []goredis.UniversalClient{b, c}, 2, []string{key, tk}, "holder2", 60000)
		if err != nil {
			t.Fatal(err)
		}
		if t1 != 6 || t2 != 7 {
			t.Errorf("tokens %d then %d, want 6 then 7", t1, t2)
		}
		// Holder 1, paused past its lease, wakes up and asks again: refused.
		if _, err := fenceQuorum(ctx, []goredis.UniversalClient{a, b}, 2, []string{key, tk}, "holder1", 60000); !errors.Is(err, ErrLost) {
			t.Errorf("stale holder got a token: %v", err)
		}
		if ok, _ := lk.CheckToken(ctx, "ce", t1); ok {
			t.Error("CheckToken: holder 1's token still newest")
		}
		if ok, _ := lk.CheckToken(ctx, "ce", t2); !ok {
			t.Error("CheckToken: holder 2's token not newest")
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		ctx := ctxFor(t, 10*time.Second)
		l, err := lk.Lock(ctx, "exp", WithExpiry(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		w := l.KeepAlive(ctx, 50*time.Millisecond)
		// Take the key away on two of three servers: a majority says
		// "not yours" at the next renewal.
		clients[0].Del(ctx, l.key)
		clients[1].Del(ctx, l.key)
		<-w.Done()
		if !errors.Is(context.Cause(w), ErrLost) {
			t.Errorf("cause %v", context.Cause(w))
		}
	})

	t.Run("OneServerKilled", func(t *testing.T) {
		ctx := ctxFor(t, 60*time.Second)
		done := make(chan []uint64, 1)
		go func() { done <- contend(t, ctx, []*Locker{lk, lk2}, counter, "kill", 4, 15) }()
		key := lk.prefix + "counter:kill"
		if err := redistest.Eventually(30*time.Second, func() error {
			if n, _ := counter.Get(ctx, key).Int(); n < 15 {
				return errors.New("not far enough")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		servers[2].Kill()
		tokens := <-done
		assertIncreasing(t, tokens)
		// Still working with two of three.
		l, err := lk.TryLock(ctx, "after")
		if err != nil {
			t.Fatalf("TryLock with one server dead: %v", err)
		}
		if ok, err := lk.CheckToken(ctx, "after", l.Token()); err != nil || !ok {
			t.Errorf("CheckToken = %v, %v", ok, err)
		}
		_ = l.Unlock(ctx)
		// A second death leaves no majority: a clear error, not a hang.
		servers[1].Kill()
		_, err = lk.TryLock(ctx, "after")
		if !errors.Is(err, ErrNoQuorum) {
			t.Errorf("TryLock with two of three dead = %v, want ErrNoQuorum", err)
		}
	})
}
