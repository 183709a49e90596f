package redis

import (
	"testing"
	"time"
)

func TestURLOptions(t *testing.T) {
	for _, tc := range []struct {
		in, url string
		vt      time.Duration
		bad     bool
		pfx     string
	}{
		{"redis://h/1?global_keyprefix=app1:&visibility_timeout=60", "redis://h/1", time.Minute, false, "app1:"},
		{"redis://h:1/0", "redis://h:1/0", 0, false, ""},
		{"redis://h:1/0?visibility_timeout=43200", "redis://h:1/0", 12 * time.Hour, false, ""},
		{"redis://h/0?visibility_timeout=0.5&socket_timeout=3", "redis://h/0?socket_timeout=3", 500 * time.Millisecond, false, ""},
		{"redis://h/0?visibility_timeout=-1", "", 0, true, ""},
		{"redis://h/0?visibility_timeout=x", "", 0, true, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			url, vt, pfx, err := splitTransportOptions(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("err %v", err)
			}
			if !tc.bad && (url != tc.url || vt != tc.vt || pfx != tc.pfx) {
				t.Errorf("got %q %v %q, want %q %v %q", url, vt, pfx, tc.url, tc.vt, tc.pfx)
			}
		})
	}
}
