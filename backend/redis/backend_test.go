package redis

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

func TestStoreGetForget(t *testing.T) {
	t.Parallel()
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser, Expires: 90 * time.Second})
			ctx := testCtx(t, 10*time.Second)
			id := newID(t)
			m, err := b.Get(ctx, id)
			if err != nil || m.Status != broker.StatePending || m.TaskID != id {
				t.Fatalf("Get of an unknown task = %+v, %v; want PENDING", m, err)
			}
			meta := &broker.ResultMeta{TaskID: id, Status: broker.StateSuccess, Result: map[string]any{"sum": int64(5)}, Children: []any{}}
			if err := b.Store(ctx, meta); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != broker.StateSuccess || got.DateDone == nil || got.Result.(map[string]any)["sum"] != int64(5) {
				t.Errorf("Get = %+v", got)
			}
			wantCT := map[string]string{"json": broker.ContentJSON, "msgpack": broker.ContentMsgpack}[ser]
			if got.ContentType != wantCT {
				t.Errorf("content type %q, want %q", got.ContentType, wantCT)
			}
			ttl, err := b.Client().TTL(ctx, TaskKey(id)).Result()
			if err != nil || ttl <= 80*time.Second || ttl > 90*time.Second {
				t.Errorf("TTL = %v, %v; want about 90s (SETEX)", ttl, err)
			}
			if err := b.Forget(ctx, id); err != nil {
				t.Fatal(err)
			}
			if m, _ := b.Get(ctx, id); m.Status != broker.StatePending {
				t.Errorf("after Forget: %s", m.Status)
			}
		})
	}
}

// TestStoreNeverOverwritesSuccess is Celery's GET-before-SET rule: a late
// FAILURE or STARTED (a duplicate delivery) cannot replace a SUCCESS, while
// other states are overwritten.
func TestStoreNeverOverwritesSuccess(t *testing.T) {
	t.Parallel()
	// The check reads the stored document inside Redis: both serializers.
	for _, ser := range []string{"json", "msgpack"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, Config{Serializer: ser})
			ctx := testCtx(t, 10*time.Second)
			steps := []struct {
				state broker.State
				want  broker.State
			}{
				{broker.StateStarted, broker.StateStarted},
				{broker.StateRetry, broker.StateRetry},
				{broker.StateFailure, broker.StateFailure},
				{broker.StateSuccess, broker.StateSuccess},
				{broker.StateFailure, broker.StateSuccess},
				{broker.StateStarted, broker.StateSuccess},
				{broker.StateRevoked, broker.StateSuccess},
			}
			id := newID(t)
			for i, s := range steps {
				if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: s.state, Result: int64(i)}); err != nil {
					t.Fatal(err)
				}
				got, err := b.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != s.want {
					t.Errorf("step %d: stored %s, state is %s; want %s", i, s.state, got.Status, s.want)
				}
			}
			if got, _ := b.Get(ctx, id); got.Result != int64(3) {
				t.Errorf("the SUCCESS result was replaced: %v", got.Result)
			}
		})
	}
}

// TestStorePublishesSameBytes checks the PUBLISH half of Celery's write.
func TestStorePublishesSameBytes(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	id := newID(t)
	ps := b.Client().Subscribe(ctx, TaskKey(id))
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: broker.StateSuccess, Result: "é"}); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := b.Client().Get(ctx, TaskKey(id)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(msg.Payload), stored) {
		t.Errorf("published %q, stored %q", msg.Payload, stored)
	}
	if !strings.HasPrefix(string(stored), `{"status": "SUCCESS", "result": "\u00e9", "traceback": null`) {
		t.Errorf("document does not look like Celery's: %s", stored)
	}
}

func TestExpiresNever(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{Expires: -1})
	ctx := testCtx(t, 10*time.Second)
	id := newID(t)
	t.Cleanup(func() { _ = b.Client().Del(context.Background(), TaskKey(id)).Err() })
	if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: broker.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if ttl, err := b.Client().TTL(ctx, TaskKey(id)).Result(); err != nil || ttl != -1 {
		t.Errorf("TTL = %v, %v; want -1 (plain SET)", ttl, err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	url := testenv.RedisURL(t)
	ctx := testCtx(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "Config.URL"},
		{"bad url", Config{URL: "redis://h:x"}, "Config.URL"},
		{"pickle", Config{URL: url, Serializer: "pickle"}, "Config.Serializer"},
		{"negative health", Config{URL: url, HealthCheck: -time.Second}, "Config.HealthCheck"},
		{"unreachable", Config{URL: "redis://:secret@127.0.0.1:1/0"}, "cannot reach redis://:xxxxx@127.0.0.1:1/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(ctx, tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestOpenBackendRegistry(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Second)
	rb, err := broker.OpenBackend(ctx, testenv.RedisURL(t), broker.BackendOptions{Serializer: "msgpack", Expires: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	b, ok := rb.(*Backend)
	if !ok {
		t.Fatalf("OpenBackend gave %T", rb)
	}
	if b.serializer != "msgpack" || b.expires != time.Minute {
		t.Errorf("options not applied: %s %v", b.serializer, b.expires)
	}
	// The producer's AsyncResult works on top of it.
	id := newID(t)
	if err := b.Store(ctx, &broker.ResultMeta{TaskID: id, Status: broker.StateFailure,
		Result: &broker.ExceptionInfo{Type: "ValueError", Message: []any{"bad"}, Module: "builtins"}}); err != nil {
		t.Fatal(err)
	}
	_, err = broker.NewAsyncResult(id, rb).Get(ctx)
	var te *broker.TaskError
	if !errors.As(err, &te) || te.Exception.Type != "ValueError" {
		t.Errorf("Get = %v, want the ValueError", err)
	}
}

func TestClosedBackend(t *testing.T) {
	t.Parallel()
	b := newBackend(t, Config{})
	ctx := testCtx(t, 10*time.Second)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := b.Wait(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSharedClient checks that a caller's client is used and left open.
func TestSharedClient(t *testing.T) {
	t.Parallel()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	testenv.RedisURL(t)
	b := newBackend(t, Config{Client: c})
	if b.Client() != goredis.UniversalClient(c) {
		t.Fatal("Client() is not the given client")
	}
	b.Close()
	if err := c.Ping(testCtx(t, 5*time.Second)).Err(); err != nil {
		t.Errorf("the shared client was closed: %v", err)
	}
}
