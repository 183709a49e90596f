package testenv

import (
	"context"
	"testing"
	"time"
)

// Service is anything started and stopped the way http.Server is:
// worker.Worker, beat.Beat.
type Service interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Run starts s and shuts it down, within 20 s, when the test ends.
func Run(t testing.TB, s Service) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
}
