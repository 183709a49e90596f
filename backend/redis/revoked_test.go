package redis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/celeriac/celeriac/internal/testenv"
)

func TestRevokedSet(t *testing.T) {
	b := newBackend(t, Config{KeyPrefix: testenv.Prefix(t) + ":"})
	ctx := context.Background()
	if err := b.AddRevoked(ctx, []string{"a", "b"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.AddRevoked(ctx, []string{"c"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := b.LoadRevoked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("LoadRevoked = %v", got)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
