package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/redistest"
	"github.com/celeriac/celeriac/internal/testenv"
)

// privateRedis starts a redis-server of the test's own: tests that use a
// short visibility timeout must not restore other tests' messages.
func privateRedis(t testing.TB) *redistest.Server {
	t.Helper()
	return redistest.Start(t, testenv.FreePort(t))
}

// crash closes b the way a killed worker goes away: its unacked messages
// are left in the unacked hash, not restored.
func crash(b *Broker) {
	b.mu.Lock()
	b.inflight = map[string]*pending{}
	b.mu.Unlock()
	_ = b.Close()
}

// waitVisible polls until every unacked message is older than vt.
func waitVisible(t testing.TB, ctx context.Context, rdb *goredis.Client, vt time.Duration) {
	t.Helper()
	waitVisiblePrefixed(t, ctx, rdb, "", vt)
}

// waitVisiblePrefixed is waitVisible under a global key prefix.
func waitVisiblePrefixed(t testing.TB, ctx context.Context, rdb *goredis.Client, pfx string, vt time.Duration) {
	t.Helper()
	err := redistest.Eventually(30*time.Second, func() error {
		ceil := float64(time.Now().Add(-vt).UnixMicro()) / 1e6
		young, err := rdb.ZCount(ctx, pfx+unackedIndexKey, strconv.FormatFloat(ceil, 'f', 6, 64), "+inf").Result()
		if err != nil {
			return err
		}
		total, err := rdb.ZCard(ctx, pfx+unackedIndexKey).Result()
		if err != nil {
			return err
		}
		if total == 0 || young > 0 {
			return fmt.Errorf("%d unacked, %d younger than %v", total, young, vt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestVisibilityTimeoutRestore(t *testing.T) {
	s := privateRedis(t)
	ctx := testCtx(t, 60*time.Second)
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	const vt = 500 * time.Millisecond
	url := s.URL() + "?visibility_timeout=0.5"
	for _, pri := range []uint8{0, 6} {
		t.Run(fmt.Sprintf("priority%d", pri), func(t *testing.T) {
			q := broker.TaskQueue(testenv.Prefix(t))
			a := open(t, Config{URL: url})
			if a.cfg.VisibilityTimeout != vt {
				t.Fatalf("visibility_timeout from the URL: %v", a.cfg.VisibilityTimeout)
			}
			m := &broker.Message{Body: []byte(`[[], {}, {}]`), ContentType: broker.ContentJSON, ContentEncoding: "utf-8",
				Headers: map[string]any{"id": "x"}, Properties: broker.Properties{DeliveryMode: 2, Priority: pri}}
			if err := a.Publish(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}); err != nil {
				t.Fatal(err) // unbound yet: dropped, as kombu drops it
			}
			if n, _ := rdb.LLen(ctx, queueKey(q.Name, int(pri))).Result(); n != 0 {
				t.Fatalf("message to an unbound exchange was queued")
			}
			if err := a.Declare(ctx, q); err != nil {
				t.Fatal(err)
			}
			if err := a.Publish(ctx, broker.Publishing{Exchange: q.Name, RoutingKey: q.Name, Message: m}); err != nil {
				t.Fatal(err)
			}
			ca, err := a.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
			if err != nil {
				t.Fatal(err)
			}
			d := recv(t, ca, 10*time.Second)
			if d.Redelivered {
				t.Fatal("first delivery marked redelivered")
			}
			if n, _ := rdb.HLen(ctx, unackedKey).Result(); n != 1 {
				t.Fatalf("unacked hash holds %d entries, want 1", n)
			}
			crash(a)
			waitVisible(t, ctx, rdb, vt)

			b := open(t, Config{URL: url})
			cb, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
			if err != nil {
				t.Fatal(err)
			}
			d2 := recv(t, cb, 10*time.Second)
			if !d2.Redelivered || d2.Message.Header("redelivered") != true {
				t.Errorf("restored delivery: Redelivered=%v header=%v", d2.Redelivered, d2.Message.Header("redelivered"))
			}
			if string(d2.Message.Body) != string(m.Body) || d2.Exchange != q.Name || d2.RoutingKey != q.Name {
				t.Errorf("restored %q via %q/%q", d2.Message.Body, d2.Exchange, d2.RoutingKey)
			}
			if err := d2.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if n, _ := rdb.HLen(ctx, unackedKey).Result(); n != 0 {
				t.Errorf("unacked hash holds %d entries after ack", n)
			}
			if n, _ := rdb.ZCard(ctx, unackedIndexKey).Result(); n != 0 {
				t.Errorf("unacked_index holds %d entries after ack", n)
			}
			if n, _ := rdb.Exists(ctx, unackedMutexKey).Result(); n != 0 {
				t.Errorf("unacked_mutex left behind")
			}
		})
	}
}

func TestMutexHeldSkipsRestore(t *testing.T) {
	s := privateRedis(t)
	ctx := testCtx(t, 30*time.Second)
	rdb := goredis.NewClient(&goredis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	b := open(t, Config{URL: s.URL(), VisibilityTimeout: time.Millisecond})
	entry, _ := unackedEntry([]byte(`{"body":"","headers":{},"properties":{"delivery_tag":"t1","delivery_info":{"exchange":"","routing_key":"q"}}}`), "", "q")
	rdb.HSet(ctx, unackedKey, "t1", entry)
	rdb.ZAdd(ctx, unackedIndexKey, goredis.Z{Score: 1, Member: "t1"})
	rdb.Set(ctx, unackedMutexKey, "someone-else", time.Minute)
	if n, err := b.restoreVisible(ctx); err != nil || n != 0 {
		t.Fatalf("restore under another's mutex: %d, %v", n, err)
	}
	if v, _ := rdb.Get(ctx, unackedMutexKey).Result(); v != "someone-else" {
		t.Fatalf("another consumer's mutex was touched: %q", v)
	}
	rdb.Del(ctx, unackedMutexKey)
	if n, err := b.restoreVisible(ctx); err != nil || n != 1 {
		t.Fatalf("restore: %d, %v", n, err)
	}
	got, _ := rdb.LRange(ctx, "q", 0, -1).Result()
	if len(got) != 1 {
		t.Fatalf("queue q holds %v", got)
	}
	d, err := decodeEnvelope([]byte(got[0]))
	if err != nil || !d.redelivered || d.msg.Header("redelivered") != true {
		t.Fatalf("restored envelope %s: %+v %v", got[0], d, err)
	}
}
