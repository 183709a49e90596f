package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redistest"
)

// Ports of this package's private servers (6390-6392 belong to lock's tests).
var (
	sentinelPorts = [3]int{6393, 6394, 6395} // master, replica, sentinel
	clusterPorts  = []int{6396, 6397, 6398}
	clusterBus    = []int{16396, 16397, 16398}
)

// TestSentinel stores and waits through a Sentinel-managed master, then
// fails the master over to its replica and checks that a waiter started
// before the failover still gets a result stored after it.
func TestSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, sentinelPorts[0], sentinelPorts[1], sentinelPorts[2])
	b := newBackend(t, Config{URL: s.URL(), HealthCheck: time.Second})
	ctx := testCtx(t, 60*time.Second)
	id := newID(t)
	if err := b.Store(ctx, success(id, "via sentinel")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Wait(ctx, id); err != nil || m.Result != "via sentinel" {
		t.Fatalf("Wait = %+v, %v", m, err)
	}
	if addr, _ := s.MasterAddr(ctx); addr != s.Master.Addr {
		t.Fatalf("master is %s before failover", addr)
	}

	late := newID(t)
	res := make(chan error, 1)
	go func() {
		m, err := b.Wait(ctx, late)
		if err == nil && m.Result != "after failover" {
			err = fmt.Errorf("got %v", m.Result)
		}
		res <- err
	}()
	if err := redistest.Eventually(10*time.Second, func() error {
		n, err := b.Client().PubSubNumSub(ctx, TaskKey(late)).Result()
		if err != nil || n[TaskKey(late)] != 1 {
			return fmt.Errorf("not subscribed: %v %v", n, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := sentinelFailover(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := redistest.Eventually(20*time.Second, func() error {
		addr, err := s.MasterAddr(ctx)
		if err != nil || addr != s.Replica.Addr {
			return fmt.Errorf("master %s, %v", addr, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The client follows the new master; a write right after the switch
	// may meet the old one (now read-only), so retry to a deadline.
	if err := redistest.Eventually(20*time.Second, func() error { return b.Store(ctx, success(late, "after failover")) }); err != nil {
		t.Fatalf("Store after failover: %v", err)
	}
	if err := <-res; err != nil {
		t.Errorf("waiter across failover: %v", err)
	}
}

func sentinelFailover(ctx context.Context, s *redistest.SentinelSetup) error {
	c := goredis.NewClient(&goredis.Options{Addr: s.Sentinel.Addr})
	defer c.Close()
	return c.Do(ctx, "SENTINEL", "FAILOVER", s.MasterName).Err()
}

// TestCluster runs Store/Wait over keys spread across three masters, a
// chord whose keys live in different slots, and a saved group.
func TestCluster(t *testing.T) {
	t.Parallel()
	cs := redistest.StartCluster(t, clusterPorts, clusterBus)
	b := newBackend(t, Config{URL: cs.URL()})
	if !b.cluster {
		t.Fatal("not a cluster client")
	}
	ctx := testCtx(t, 60*time.Second)
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		id := newID(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				if err := b.Store(ctx, success(id, int64(i))); err != nil {
					errs <- err
					return
				}
			}
			waited := make(chan error, 1)
			go func() {
				m, err := b.Wait(ctx, id)
				if err == nil && m.Result != int64(i) {
					err = fmt.Errorf("task %d got %v", i, m.Result)
				}
				waited <- err
			}()
			if i%2 == 1 {
				if err := b.Store(ctx, success(id, int64(i))); err != nil {
					errs <- err
				}
			}
			if err := <-waited; err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	gid := newID(t)
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	var ready int
	for i := range 3 {
		j, err := b.ChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: fmt.Sprint(i), GroupIndex: intp(2 - i),
			State: broker.StateSuccess, Result: int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if j.Ready {
			ready++
			if fmt.Sprint(j.Results) != "[2 1 0]" {
				t.Errorf("results %v", j.Results)
			}
		}
	}
	if ready != 1 {
		t.Errorf("ready %d times", ready)
	}
	if err := b.ChordCleanup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	g := ResultNode{ID: gid, Group: true, Children: []ResultNode{{ID: "a"}}}
	if err := b.SaveGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if got, err := b.RestoreGroup(ctx, gid); err != nil || got.Children[0].ID != "a" {
		t.Errorf("RestoreGroup = %+v, %v", got, err)
	}
}
