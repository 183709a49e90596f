package lock

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// BenchmarkLockUnlock measures an uncontended TryLock + Unlock on one Redis
// and on three masters, with and without the fencing token, next to bare
// redsync (the anchor) doing the same.
func BenchmarkLockUnlock(b *testing.B) {
	opt, err := goredis.ParseURL(testenv.RedisURL(b))
	if err != nil {
		b.Fatal(err)
	}
	one := []goredis.UniversalClient{goredis.NewClient(opt)}
	defer one[0].Close()
	var three []goredis.UniversalClient
	for _, p := range redlockPorts {
		s := redistest.Start(b, p)
		c := goredis.NewClient(&goredis.Options{Addr: s.Addr})
		defer c.Close()
		three = append(three, c)
	}
	for _, setup := range []struct {
		name    string
		clients []goredis.UniversalClient
	}{{"1redis", one}, {"3masters", three}} {
		lk, err := New(Config{Clients: setup.clients, Prefix: testenv.Prefix(b) + ":", TokenTTL: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name string
			opts []Option
		}{{"token", nil}, {"notoken", []Option{WithoutToken()}}} {
			b.Run(setup.name+"/"+v.name, func(b *testing.B) {
				run(b, func(ctx context.Context, name string) error {
					l, err := lk.TryLock(ctx, name, v.opts...)
					if err != nil {
						return err
					}
					return l.Unlock(ctx)
				})
			})
		}
		pools := make([]redsyncredis.Pool, len(setup.clients))
		for i, c := range setup.clients {
			pools[i] = redsyncgoredis.NewPool(c)
		}
		rs := redsync.New(pools...)
		b.Run(setup.name+"/redsync", func(b *testing.B) {
			run(b, func(ctx context.Context, name string) error {
				m := rs.NewMutex(lk.key(name), redsync.WithTries(1))
				if err := m.TryLockContext(ctx); err != nil {
					return err
				}
				_, err := m.UnlockContext(ctx)
				return err
			})
		})
	}
}

func run(b *testing.B, f func(context.Context, string) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var n atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := f(ctx, fmt.Sprint("bench-", n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
