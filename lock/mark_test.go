package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/testenv"
)

// markLocker returns a locker over n independent keyspaces of the shared
// test Redis (databases 13–15), which behave as independent masters for
// marks.
func markLocker(t *testing.T, n int) (*Locker, []goredis.UniversalClient) {
	t.Helper()
	opt, err := goredis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	var clients []goredis.UniversalClient
	for i := range n {
		o := *opt
		o.DB = 13 + i
		c := goredis.NewClient(&o)
		t.Cleanup(func() { c.Close() })
		clients = append(clients, c)
	}
	return newLocker(t, Config{Clients: clients}), clients
}

func TestMarks(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(map[int]string{1: "single", 3: "majority"}[n], func(t *testing.T) {
			l, clients := markLocker(t, n)
			ctx := ctxFor(t, 10*time.Second)
			if _, found, err := l.Marked(ctx, "task-1"); err != nil || found {
				t.Fatalf("fresh name marked: %v %v", found, err)
			}
			if err := l.Mark(ctx, "task-1", "SUCCESS", time.Minute); err != nil {
				t.Fatal(err)
			}
			v, found, err := l.Marked(ctx, "task-1")
			if err != nil || !found || v != "SUCCESS" {
				t.Fatalf("Marked = %q %v %v", v, found, err)
			}
			copies := 0
			for _, c := range clients {
				if ttl := c.TTL(ctx, l.markKey("task-1")).Val(); ttl > 0 && ttl <= time.Minute {
					copies++
				}
			}
			if copies != n {
				t.Errorf("mark with a TTL on %d of %d servers", copies, n)
			}
			if n == 3 {
				// Lost on one server, still seen through the others.
				for _, c := range clients {
					if c.Exists(ctx, l.markKey("task-1")).Val() == 1 {
						c.Del(context.Background(), l.markKey("task-1"))
						break
					}
				}
				if _, found, err := l.Marked(ctx, "task-1"); err != nil || !found {
					t.Fatalf("mark on 2 of 3 servers not found: %v %v", found, err)
				}
			}
			if err := l.Mark(ctx, "task-2", "x", 0); err == nil {
				t.Error("a mark without ttl was accepted")
			}
		})
	}
}

// TestMarkAndUnlock: the guard's two steps in one — mark done and release —
// and the mark read back by the next holder's acquisition.
func TestMarkAndUnlock(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(map[int]string{1: "single", 3: "majority"}[n], func(t *testing.T) {
			l, _ := markLocker(t, n)
			ctx := ctxFor(t, 10*time.Second)
			name := testenv.Prefix(t)
			first, err := l.TryLock(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if _, found, ok := first.MarkSeen(); ok != (n == 1) || found {
				t.Fatalf("MarkSeen on a fresh name: found %v, ok %v", found, ok)
			}
			if err := first.MarkAndUnlock(ctx, "SUCCESS", time.Minute); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(first.Err(), ErrReleased) {
				t.Fatalf("lease after MarkAndUnlock: %v", first.Err())
			}
			if v, found, err := l.Marked(ctx, name); err != nil || !found || v != "SUCCESS" {
				t.Fatalf("Marked: %q %v %v", v, found, err)
			}
			second, err := l.TryLock(ctx, name) // released: free at once
			if err != nil {
				t.Fatal(err)
			}
			defer second.Unlock(ctx)
			if v, found, ok := second.MarkSeen(); n == 1 && (!ok || !found || v != "SUCCESS") {
				t.Fatalf("MarkSeen after a mark: %q %v %v", v, found, ok)
			}
			if err := first.MarkAndUnlock(ctx, "SUCCESS", time.Minute); !errors.Is(err, ErrNotHeld) {
				t.Fatalf("second MarkAndUnlock: %v, want ErrNotHeld", err)
			}
		})
	}
}

// TestPeek: on one server the acquisition script reads the caller's key
// under the new lease; with several it does not, and says so.
func TestPeek(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(map[int]string{1: "single", 3: "majority"}[n], func(t *testing.T) {
			l, clients := markLocker(t, n)
			ctx := ctxFor(t, 10*time.Second)
			key := "peek:" + testenv.Prefix(t)
			t.Cleanup(func() { clients[0].Del(context.Background(), key) })
			for _, tc := range []struct {
				name  string
				value string // "" for a missing key
			}{{"missing", ""}, {"present", "SUCCESS"}} {
				if tc.value != "" {
					if err := clients[0].Set(ctx, key, tc.value, time.Minute).Err(); err != nil {
						t.Fatal(err)
					}
				}
				lease, err := l.TryLock(ctx, tc.name, WithPeek(key))
				if err != nil {
					t.Fatal(err)
				}
				v, found, ok := lease.Peeked()
				if n > 1 {
					if ok {
						t.Errorf("%s: Peeked ok with %d servers", tc.name, n)
					}
				} else if !ok || found != (tc.value != "") || v != tc.value {
					t.Errorf("%s: Peeked = %q %v %v, want %q", tc.name, v, found, ok, tc.value)
				}
				if err := lease.Unlock(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := l.SameServer(clients[0]); got != (n == 1) {
				t.Errorf("SameServer(its own client) = %v with %d servers", got, n)
			}
			other := goredis.NewClient(&goredis.Options{Addr: clients[0].(*goredis.Client).Options().Addr, DB: 12})
			defer other.Close()
			if l.SameServer(other) {
				t.Error("SameServer true for another database")
			}
		})
	}
}

// TestMarkAndUnlockWith: the caller's own script marks and releases on one
// server; with several servers the call declines and does nothing.
func TestMarkAndUnlockWith(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(map[int]string{1: "single", 3: "majority"}[n], func(t *testing.T) {
			l, clients := markLocker(t, n)
			ctx := ctxFor(t, 10*time.Second)
			for _, tc := range []struct {
				name     string
				released bool
				wantErr  error
			}{{"held", true, nil}, {"lost", false, ErrNotHeld}} {
				lease, err := l.TryLock(ctx, tc.name)
				if err != nil {
					t.Fatal(err)
				}
				var got Release
				ok, err := lease.MarkAndUnlockWith(ctx, "SUCCESS", time.Minute, func(ctx context.Context, r Release) (bool, error) {
					got = r
					if err := clients[0].Set(ctx, r.MarkKey, r.Mark, r.MarkTTL).Err(); err != nil {
						return false, err
					}
					return tc.released, clients[0].Del(ctx, r.LockKey).Err()
				})
				if n > 1 {
					if ok || got.LockKey != "" {
						t.Fatalf("%s: ran with %d servers", tc.name, n)
					}
					_ = lease.Unlock(ctx)
					continue
				}
				if !ok || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("%s: ok=%v err=%v, want %v", tc.name, ok, err, tc.wantErr)
				}
				if got.LockKey != l.key(tc.name) || got.MarkKey != l.markKey(tc.name) || got.LockValue == "" || got.MarkTTL != time.Minute {
					t.Fatalf("%s: Release = %+v", tc.name, got)
				}
				if v, found, _ := l.Marked(ctx, tc.name); !found || v != "SUCCESS" {
					t.Fatalf("%s: mark %q %v", tc.name, v, found)
				}
				if err := lease.Err(); !errors.Is(err, ErrReleased) {
					t.Fatalf("%s: lease after release: %v", tc.name, err)
				}
			}
		})
	}
}
