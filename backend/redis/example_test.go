package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/celeriac/celeriac/backend/redis"
	"github.com/celeriac/celeriac/broker"
)

// A Go worker stores a result; a Python client's AsyncResult(id).get()
// returns 5, and so does Wait.
func ExampleBackend_Wait() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if err := b.Store(ctx, &broker.ResultMeta{TaskID: "d9b1a3c0", Status: broker.StateSuccess, Result: int64(5)}); err != nil {
		log.Fatal(err)
	}
	meta, err := b.Wait(ctx, "d9b1a3c0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(meta.Status, meta.Result)
}

// A chord header task finished on a Go worker; whichever worker — Go or
// Python — records the last part fires the body.
func ExampleBackend_ChordPartReturn() {
	ctx := context.Background()
	b, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	index := 2
	join, err := b.ChordPartReturn(ctx, redis.ChordPart{
		GroupID: "g1", TaskID: "t3", GroupIndex: &index, State: broker.StateSuccess, Result: int64(30),
	})
	if err != nil {
		log.Fatal(err)
	}
	if join.Ready {
		if join.Err != nil {
			// Store join.Err.Exception() as the body's FAILURE.
			return
		}
		// Send the body with join.Results as its argument, then:
		_ = b.ChordCleanup(ctx, "g1")
	}
}
