package lock_test

import (
	"context"
	"errors"
	"log"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/lock"
)

// A job that must not run twice at once, whose writes carry the lease's
// fencing token so a holder that stalled past its lease is refused.
func ExampleLocker_Lock() {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	lk, err := lock.New(lock.Config{Clients: []goredis.UniversalClient{rdb}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lease, err := lk.Lock(ctx, "nightly-report", lock.WithExpiry(15*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Unlock(context.Background())
	work := lease.KeepAlive(ctx, 5*time.Second)
	if err := writeReport(work, lease.Token()); err != nil && errors.Is(context.Cause(work), lock.ErrLost) {
		log.Print("lost the lock mid-way; the next holder will redo the report")
	}
}

// Three independent masters: a lock needs two of them.
func ExampleNew_redlock() {
	lk, err := lock.New(lock.Config{URLs: []string{
		"redis://10.0.0.1:6379/0", "redis://10.0.0.2:6379/0", "redis://10.0.0.3:6379/0",
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()
	lease, err := lk.TryLock(context.Background(), "invoice-42")
	var taken *lock.TakenError
	if errors.As(err, &taken) {
		log.Printf("busy; try again in %v", taken.RetryAfter)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Unlock(context.Background())
}

func writeReport(ctx context.Context, token uint64) error { return ctx.Err() }
