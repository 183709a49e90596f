package redis

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
)

// BenchmarkStore is one SUCCESS write: GET, then MULTI SETEX+PUBLISH EXEC.
func BenchmarkStore(b *testing.B) {
	be := newBackend(b, Config{Expires: time.Minute})
	ctx := testCtx(b, 10*time.Minute)
	prefix := newID(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := be.Store(ctx, success(fmt.Sprintf("%s-%d", prefix, i), int64(5))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreParallel is Store from 8 goroutines per CPU (a worker's
// concurrent tasks).
func BenchmarkStoreParallel(b *testing.B) {
	be := newBackend(b, Config{Expires: time.Minute})
	ctx := testCtx(b, 10*time.Minute)
	prefix := newID(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("%s-%d", prefix, n.Add(1))
			if err := be.Store(ctx, success(id, int64(5))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWaitRoundTrip is a client waiting for a result that a worker
// stores at the same moment: Wait (subscribe, GET after the confirmation)
// racing Store (GET, SETEX+PUBLISH); the waiter wakes by PUBLISH or by the
// GET, whichever comes first. All waiters share one pub/sub connection.
func BenchmarkWaitRoundTrip(b *testing.B) {
	be := newBackend(b, Config{Expires: time.Minute})
	ctx := testCtx(b, 10*time.Minute)
	prefix := newID(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("%s-%d", prefix, n.Add(1))
			done := make(chan error, 1)
			go func() {
				m, err := be.Wait(ctx, id)
				if err == nil && m.Status != broker.StateSuccess {
					err = fmt.Errorf("status %s", m.Status)
				}
				done <- err
			}()
			if err := be.Store(ctx, success(id, int64(5))); err != nil {
				b.Error(err)
				return
			}
			if err := <-done; err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWaitStored is AsyncResult.get() of a result that is already
// there: one GET.
func BenchmarkWaitStored(b *testing.B) {
	be := newBackend(b, Config{Expires: time.Minute})
	ctx := testCtx(b, 10*time.Minute)
	id := newID(b)
	if err := be.Store(ctx, success(id, int64(5))); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Wait(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
