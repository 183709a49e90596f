package redisurl

import (
	"strings"
	"testing"
)

// FuzzParse checks that no input panics, that a parsed URL always names at
// least one server, and that errors never show a password.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0", "rediss://:pw@h:6380/1?ssl_cert_reqs=none",
		"unix:///tmp/r.sock?db=1", "socket:///x?virtual_host=2",
		"sentinel://:pw@a:26379/1;sentinel://b?master_name=m",
		"redis+cluster://a:1,b:2", "redis+cluster://[::1]:1;redis+cluster://[::1]:2",
		"redis://h?socket_timeout=1.5&max_connections=3", "redis://[::1", "redis://h:/", ";;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Parse(raw, Options{})
		if err != nil {
			if strings.Contains(raw, ":SECRET@") && strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if len(c.Universal.Addrs) == 0 {
			t.Fatalf("Parse(%q) gave no address", raw)
		}
		if c.Kind == Sentinel && c.Universal.MasterName == "" {
			t.Fatalf("Parse(%q): sentinel without master name", raw)
		}
		if c.Kind == Cluster && c.Universal.DB != 0 {
			t.Fatalf("Parse(%q): cluster with db %d", raw, c.Universal.DB)
		}
	})
}
