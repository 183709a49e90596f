package lock

import (
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/redisurl"
)

// TestSentinelAndCluster: one Sentinel-managed master, or one Redis
// Cluster, as the lock store.
func TestSentinelAndCluster(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, sentinelPorts[0], sentinelPorts[1], sentinelPorts[2])
	cs := redistest.StartCluster(t, clusterPorts, clusterBus)
	for _, tc := range []struct{ name, url string }{
		{"sentinel", s.URL()},
		{"cluster", cs.URL()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lk := newLocker(t, Config{URLs: []string{tc.url}})
			counter, err := redisurl.NewClient(tc.url, redisurl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer counter.Close()
			ctx := ctxFor(t, 60*time.Second)
			// Names with braces must keep the lock and its counter in
			// one slot, or the fencing script fails with CROSSSLOT.
			for _, name := range []string{"job", "a{b}c", "}{"} {
				tokens := contend(t, ctx, []*Locker{lk}, counter, name, 4, 8)
				assertIncreasing(t, tokens)
			}
			l, err := lk.Lock(ctx, "job")
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := lk.CheckToken(ctx, "job", l.Token()); err != nil || !ok {
				t.Errorf("CheckToken = %v, %v", ok, err)
			}
			if err := l.Extend(ctx); err != nil {
				t.Error(err)
			}
			if err := l.Unlock(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}
