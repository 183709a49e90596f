package redis

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open connects to the shared test Redis; the broker is closed when the
// test ends.
func open(t testing.TB, cfg Config) *Broker {
	t.Helper()
	if cfg.URL == "" && cfg.Client == nil {
		cfg.URL = testenv.RedisURL(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func recv(t testing.TB, c broker.Consumer, within time.Duration) *broker.Delivery {
	t.Helper()
	select {
	case d, ok := <-c.Deliveries():
		if !ok {
			t.Fatal("deliveries closed")
		}
		return d
	case <-time.After(within):
		t.Fatal("no delivery within", within)
	}
	return nil
}
