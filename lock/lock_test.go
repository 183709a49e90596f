package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// go-redis probes a dead server from a goroutine that notices the client
// was closed only after its one-second sleep; the tests that kill servers
// leave one behind for up to that second.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// sharedClient is a client of the shared test Redis.
func sharedClient(t *testing.T) goredis.UniversalClient {
	t.Helper()
	url := testenv.RedisURL(t)
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// privateClient talks to a server a test may kill: no retries, short
// timeouts, so a dead server costs little.
func privateClient(t *testing.T, addr string) goredis.UniversalClient {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

func newLocker(t *testing.T, cfg Config) *Locker {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = testenv.Prefix(t) + ":"
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 20 * time.Millisecond
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 10 * time.Minute
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// contend runs workers goroutines that each take the lock rounds times and
// do an unprotected read-modify-write of a counter in Redis. Without mutual
// exclusion increments are lost. It returns the tokens in the order the
// critical sections ran.
func contend(t *testing.T, ctx context.Context, lockers []*Locker, counter goredis.UniversalClient, name string, workers, rounds int) []uint64 {
	t.Helper()
	key := lockers[0].prefix + "counter:" + name
	t.Cleanup(func() { counter.Del(context.Background(), key) })
	var (
		mu     sync.Mutex
		tokens []uint64
		wg     sync.WaitGroup
	)
	for w := range workers {
		lk := lockers[w%len(lockers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				lease, err := lk.Lock(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				n, err := counter.Get(ctx, key).Int()
				if err != nil && !errors.Is(err, goredis.Nil) {
					t.Error(err)
				}
				mu.Lock()
				tokens = append(tokens, lease.Token())
				mu.Unlock()
				if err := counter.Set(ctx, key, n+1, time.Minute).Err(); err != nil {
					t.Error(err)
				}
				if err := lease.Unlock(ctx); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if got, _ := counter.Get(ctx, key).Int(); got != workers*rounds {
		t.Errorf("counter = %d after %d locked increments: mutual exclusion failed", got, workers*rounds)
	}
	return tokens
}

func assertIncreasing(t *testing.T, tokens []uint64) {
	t.Helper()
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d after %d (position %d): not monotonic", tokens[i], tokens[i-1], i)
		}
	}
	if len(tokens) > 0 && tokens[0] == 0 {
		t.Error("token 0 issued")
	}
}

func TestMutualExclusionOneRedis(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	tokens := contend(t, ctxFor(t, 60*time.Second), []*Locker{lk}, c, "counter", 6, 20)
	assertIncreasing(t, tokens)
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	a, err := lk.TryLock(ctx, "job", WithExpiry(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lk.TryLock(ctx, "job")
	var te *TakenError
	if !errors.As(err, &te) || !errors.Is(err, ErrTaken) {
		t.Fatalf("second TryLock = %v, want a TakenError", err)
	}
	if te.RetryAfter <= 0 || te.RetryAfter > 5*time.Second || te.Name != "job" {
		t.Errorf("TakenError %+v", te)
	}
	if _, err := lk.TryLock(ctx, "other job"); err != nil {
		t.Errorf("another name is free: %v", err)
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(a.Err(), ErrReleased) {
		t.Errorf("Err after Unlock = %v", a.Err())
	}
	if err := a.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second Unlock = %v, want ErrNotHeld", err)
	}
	b, err := lk.TryLock(ctx, "job")
	if err != nil {
		t.Fatalf("TryLock after Unlock: %v", err)
	}
	if b.Token() <= a.Token() {
		t.Errorf("tokens %d then %d", a.Token(), b.Token())
	}
	_ = b.Unlock(ctx)
}

func TestLockWaitsAndGivesUp(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	held, err := lk.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	_, err = lk.Lock(short, "x")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTaken) {
		t.Fatalf("Lock on a held lock = %v; want DeadlineExceeded and ErrTaken", err)
	}
	got := make(chan *Lease, 1)
	go func() {
		l, err := lk.Lock(ctx, "x")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if l := <-got; l != nil {
		_ = l.Unlock(ctx)
	}
}

func TestExtendAndLoss(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	lease, err := lk.Lock(ctx, "x", WithExpiry(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	first := lease.Expiry()
	if err := redistest.Eventually(time.Second, func() error {
		if err := lease.Extend(ctx); err != nil {
			return err
		}
		if !lease.Expiry().After(first) {
			return errors.New("expiry did not move")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Someone removes the key (an operator, a FLUSHDB, a failover).
	if err := c.Del(ctx, lk.key("x")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Extend(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("Extend after the key vanished = %v, want ErrLost", err)
	}
	select {
	case <-lease.Done():
	default:
		t.Fatal("Done not closed after the loss")
	}
	if !errors.Is(lease.Err(), ErrLost) {
		t.Errorf("Err = %v", lease.Err())
	}
	if err := lease.Unlock(ctx); !errors.Is(err, ErrNotHeld) {
		t.Errorf("Unlock of a lost lease = %v, want ErrNotHeld", err)
	}
}

func TestLeaseExpires(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	lease, err := lk.Lock(ctx, "x", WithExpiry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	<-lease.Done() // nobody renews it
	if !errors.Is(lease.Err(), ErrExpired) || !errors.Is(lease.Err(), ErrLost) {
		t.Fatalf("Err = %v, want ErrExpired (an ErrLost)", lease.Err())
	}
	if time.Now().Before(lease.Expiry()) {
		t.Error("Done closed before Expiry")
	}
	if err := lease.Extend(ctx); !errors.Is(err, ErrExpired) {
		t.Errorf("Extend after expiry = %v", err)
	}
	other, err := lk.Lock(ctx, "x")
	if err != nil {
		t.Fatalf("the expired lock is not free: %v", err)
	}
	_ = other.Unlock(ctx)
}

// TestKeepAlive: renewals keep a short lease alive well past its length;
// deleting the key cancels the KeepAlive context with ErrLost.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	// Generous margins: under -race on a loaded machine a renewal can
	// take a good part of a second.
	lease, err := lk.Lock(ctx, "x", WithExpiry(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	work := lease.KeepAlive(ctx, 100*time.Millisecond)
	deadline := lease.Expiry().Add(time.Second) // renewed for a whole extra lease
	if err := redistest.Eventually(5*time.Second, func() error {
		if lease.Err() != nil {
			return fmt.Errorf("lease ended: %w", lease.Err())
		}
		if !lease.Expiry().After(deadline) {
			return errors.New("not renewed far enough yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := lk.TryLock(ctx, "x"); !errors.Is(err, ErrTaken) {
		t.Fatalf("TryLock while kept alive = %v", err)
	}
	if err := c.Del(ctx, lk.key("x")).Err(); err != nil {
		t.Fatal(err)
	}
	<-work.Done()
	if !errors.Is(context.Cause(work), ErrLost) {
		t.Errorf("KeepAlive context cause = %v, want ErrLost", context.Cause(work))
	}
	<-lease.Done()
	_ = lease.Unlock(ctx)
}

// TestKeepAliveReleased: Unlock stops the renewals and cancels the context.
func TestKeepAliveReleased(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	lease, err := lk.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	work := lease.KeepAlive(ctx, 0)
	if err := lease.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	<-work.Done()
	if !errors.Is(context.Cause(work), ErrReleased) {
		t.Errorf("cause %v", context.Cause(work))
	}
}

// TestKeepAliveServerPaused: the only Redis stops answering (SIGSTOP);
// renewals fail, the lease runs out and the KeepAlive context is cancelled
// with ErrExpired.
func TestKeepAliveServerPaused(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, pausePort)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{privateClient(t, s.Addr)}})
	ctx := ctxFor(t, 10*time.Second)
	lease, err := lk.Lock(ctx, "x", WithExpiry(400*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	work := lease.KeepAlive(ctx, 100*time.Millisecond)
	s.Pause()
	defer s.Resume()
	<-work.Done()
	if !errors.Is(context.Cause(work), ErrExpired) {
		t.Errorf("cause %v, want ErrExpired", context.Cause(work))
	}
	s.Resume()
	_ = lease.Unlock(ctx)
}

func TestCheckTokenOneRedis(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	a, err := lk.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := lk.CheckToken(ctx, "x", a.Token()); err != nil || !ok {
		t.Fatalf("CheckToken of the holder = %v, %v", ok, err)
	}
	_ = a.Unlock(ctx)
	b, err := lk.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Unlock(ctx)
	if ok, _ := lk.CheckToken(ctx, "x", a.Token()); ok {
		t.Error("an older token still reads as newest")
	}
	if ok, _ := lk.CheckToken(ctx, "x", b.Token()); !ok {
		t.Error("the newest token is not newest")
	}
}

func TestWithoutToken(t *testing.T) {
	t.Parallel()
	c := sharedClient(t)
	lk := newLocker(t, Config{Clients: []goredis.UniversalClient{c}})
	ctx := ctxFor(t, 10*time.Second)
	l, err := lk.Lock(ctx, "x", WithoutToken())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	if l.Token() != 0 {
		t.Errorf("token %d", l.Token())
	}
	if n, _ := c.Exists(ctx, tokenKey(lk.key("x"))).Result(); n != 0 {
		t.Error("a token counter was written")
	}
}

func TestKeys(t *testing.T) {
	lk := &Locker{prefix: "p:"}
	for name, want := range map[string]string{
		"job":     "p:{job}",
		"a{b}c":   "p:{a%7Bb%7Dc}",
		"100%":    "p:{100%25}",
		"}":       "p:{%7D}",
		"task-id": "p:{task-id}",
	} {
		if got := lk.key(name); got != want {
			t.Errorf("key(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Clients or Config.URLs"},
		{Config{Clients: []goredis.UniversalClient{nil}}, "Config.Clients[0]"},
		{Config{URLs: []string{"redis://h:x"}}, "Config.URLs[0]"},
		{Config{Clients: []goredis.UniversalClient{c}, Prefix: "a{"}, "Config.Prefix"},
		{Config{Clients: []goredis.UniversalClient{c}, Expiry: time.Millisecond}, "Config.Expiry"},
		{Config{Clients: []goredis.UniversalClient{c}, RetryDelay: -1}, "Config.RetryDelay"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	lk, err := New(Config{Clients: []goredis.UniversalClient{c}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Lock(context.Background(), "x", WithExpiry(time.Microsecond)); err == nil {
		t.Error("a 1µs lease was accepted")
	}
	if _, err := lk.TryLock(context.Background(), ""); err == nil {
		t.Error("an empty name was accepted")
	}
}
