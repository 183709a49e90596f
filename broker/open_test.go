package broker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestOpenFailoverSchemes: a failover list may mix the schemes of one
// transport (TLS or not, Celery's pyamqp alias) but not two transports.
func TestOpenFailoverSchemes(t *testing.T) {
	var got [][]string
	opened := errors.New("opened")
	fake := func(name string) OpenFunc {
		return func(ctx context.Context, urls []string, opts Options) (Broker, error) {
			got = append(got, append([]string{name}, urls...))
			return nil, opened
		}
	}
	Register(fake("a"), "testa", "testas", "pytesta")
	Register(fake("b"), "testb", "testbs")
	tests := []struct {
		name, urls string
		want       []string // transport and URLs opened; nil for an error
		errHas     string
	}{
		{"one", "testa://h//", []string{"a", "testa://h//"}, ""},
		{"tls and alias", "testa://h//; testas://i// ;pytesta://j//", []string{"a", "testa://h//", "testas://i//", "pytesta://j//"}, ""},
		{"two transports", "testa://h//;testb://i//", nil, "mix transports"},
		{"unknown", "nope://h//", nil, "nope"},
		{"empty", " ; ", nil, "no broker URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			_, err := Open(context.Background(), tc.urls, Options{})
			if tc.want == nil {
				if err == nil || errors.Is(err, opened) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.errHas)
				}
				return
			}
			if !errors.Is(err, opened) || len(got) != 1 || !slices.Equal(got[0], tc.want) {
				t.Fatalf("opened %v (err %v), want %v", got, err, tc.want)
			}
		})
	}
}
