package redisurl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// want is the part of a parsed URL a table row checks.
type want struct {
	Kind       Kind
	Addrs      []string
	DB         int
	Username   string
	Password   string
	Master     string
	SentinelPw string
	TLS        bool
	Insecure   bool
	Read       time.Duration
	Dial       time.Duration
	Pool       int
	ClientName string
	Unix       bool
}

func summary(c *Config) want {
	o := c.Universal
	return want{
		Kind: c.Kind, Addrs: o.Addrs, DB: o.DB, Username: o.Username, Password: o.Password,
		Master: o.MasterName, SentinelPw: o.SentinelPassword,
		TLS: o.TLSConfig != nil, Insecure: o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify,
		Read: o.ReadTimeout, Dial: o.DialTimeout, Pool: o.PoolSize, ClientName: o.ClientName,
		Unix: o.Dialer != nil,
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts Options
		want want
	}{
		{"plain", "redis://127.0.0.1:6379/0", Options{}, want{Addrs: []string{"127.0.0.1:6379"}}},
		{"defaults", "redis://", Options{}, want{Addrs: []string{"localhost:6379"}}},
		{"host only", "redis://cache", Options{}, want{Addrs: []string{"cache:6379"}}},
		{"empty port", "redis://cache:/2", Options{}, want{Addrs: []string{"cache:6379"}, DB: 2}},
		{"db", "redis://h:6380/3", Options{}, want{Addrs: []string{"h:6380"}, DB: 3}},
		{"db query overrides path", "redis://h/3?db=5", Options{}, want{Addrs: []string{"h:6379"}, DB: 5}},
		{"password only", "redis://:s%40cret@h:1/1", Options{}, want{Addrs: []string{"h:1"}, DB: 1, Password: "s@cret"}},
		{"user and password", "redis://alice:pw@h", Options{}, want{Addrs: []string{"h:6379"}, Username: "alice", Password: "pw"}},
		{"password param", "redis://h?password=pw", Options{}, want{Addrs: []string{"h:6379"}, Password: "pw"}},
		{"ipv6", "redis://[::1]:6390/4", Options{}, want{Addrs: []string{"[::1]:6390"}, DB: 4}},
		{"ipv6 default port", "redis://[::1]", Options{}, want{Addrs: []string{"[::1]:6379"}}},
		{"timeouts and pool", "redis://h?socket_timeout=2.5&socket_connect_timeout=0.5&max_connections=7&client_name=w1",
			Options{}, want{Addrs: []string{"h:6379"}, Read: 2500 * time.Millisecond, Dial: 500 * time.Millisecond, Pool: 7, ClientName: "w1"}},
		{"client name option", "redis://h", Options{ClientName: "celeriac"}, want{Addrs: []string{"h:6379"}, ClientName: "celeriac"}},
		{"ignored redis-py params", "redis://h?health_check_interval=10&retry_on_timeout=true", Options{}, want{Addrs: []string{"h:6379"}}},
		{"virtual_host ignored on tcp", "redis://h/2?virtual_host=5", Options{}, want{Addrs: []string{"h:6379"}, DB: 2}},
		{"upper-case scheme", "REDIS://h", Options{}, want{Addrs: []string{"h:6379"}}},
		{"rediss default verifies", "rediss://h:6380/0", Options{}, want{Addrs: []string{"h:6380"}, TLS: true}},
		{"rediss required", "rediss://h?ssl_cert_reqs=CERT_REQUIRED", Options{}, want{Addrs: []string{"h:6379"}, TLS: true}},
		{"rediss optional", "rediss://h?ssl_cert_reqs=optional", Options{}, want{Addrs: []string{"h:6379"}, TLS: true}},
		{"rediss none", "rediss://:pw@h?ssl_cert_reqs=CERT_NONE", Options{}, want{Addrs: []string{"h:6379"}, TLS: true, Insecure: true, Password: "pw"}},
		{"rediss no hostname check", "rediss://h?ssl_check_hostname=false", Options{}, want{Addrs: []string{"h:6379"}, TLS: true, Insecure: true}},
		{"unix", "unix:///run/redis.sock?db=2", Options{}, want{Addrs: []string{"/run/redis.sock"}, DB: 2, Unix: true}},
		{"socket kombu", "socket:///run/redis.sock?virtual_host=3", Options{}, want{Addrs: []string{"/run/redis.sock"}, DB: 3, Unix: true}},
		{"redis+socket", "redis+socket:///tmp/r.sock", Options{}, want{Addrs: []string{"/tmp/r.sock"}, Unix: true}},
		{"unix password", "unix://:pw@/tmp/r.sock", Options{}, want{Addrs: []string{"/tmp/r.sock"}, Password: "pw", Unix: true}},
		{"sentinel celery form", "sentinel://:pw@10.0.0.1:26379/1;sentinel://10.0.0.2:26380/1?master_name=mymaster", Options{},
			want{Kind: Sentinel, Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26380"}, DB: 1, Password: "pw", Master: "mymaster"}},
		{"sentinel default port and option", "sentinel://s1;s2:26390", Options{MasterName: "m"},
			want{Kind: Sentinel, Addrs: []string{"s1:26379", "s2:26390"}, Master: "m"}},
		{"sentinel same name twice", "sentinel://s1?master_name=m", Options{MasterName: "m"},
			want{Kind: Sentinel, Addrs: []string{"s1:26379"}, Master: "m"}},
		{"sentinel password", "sentinel://s1?master_name=m&sentinel_password=sp", Options{},
			want{Kind: Sentinel, Addrs: []string{"s1:26379"}, Master: "m", SentinelPw: "sp"}},
		{"cluster commas", "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001", Options{},
			want{Kind: Cluster, Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7001"}, Password: "pw"}},
		{"cluster semicolons", "redis+cluster://[::1]:7000;redis+cluster://[::1]:7001/0", Options{},
			want{Kind: Cluster, Addrs: []string{"[::1]:7000", "[::1]:7001"}}},
		{"cluster one seed", "redis+cluster://h:7000", Options{}, want{Kind: Cluster, Addrs: []string{"h:7000"}}},
		{"cluster tls", "rediss+cluster://h:7000,h:7001?ssl_cert_reqs=none", Options{},
			want{Kind: Cluster, Addrs: []string{"h:7000", "h:7001"}, TLS: true, Insecure: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.url, tc.opts)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.url, err)
			}
			if diff := cmp.Diff(tc.want, summary(c)); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.url, diff)
			}
			if c.Kind == Cluster && !c.Universal.IsClusterMode {
				t.Errorf("cluster URL without IsClusterMode")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, url string
		opts      Options
		part      string // must appear in the message
	}{
		{"empty", "", Options{}, "URL"},
		{"no scheme", "127.0.0.1:6379", Options{}, "scheme"},
		{"bad scheme", "http://h", Options{}, "scheme"},
		{"bad port", "redis://h:99999", Options{}, "port"},
		{"port not number", "redis://h:abc", Options{}, "URL"},
		{"bad db", "redis://h/x", Options{}, "database"},
		{"negative db", "redis://h?db=-1", Options{}, "parameter db"},
		{"unknown param", "redis://h?sockettimeout=1", Options{}, "parameter sockettimeout"},
		{"repeated param", "redis://h?db=1&db=2", Options{}, "parameter db"},
		{"bad timeout", "redis://h?socket_timeout=soon", Options{}, "parameter socket_timeout"},
		{"ssl on redis", "redis://h?ssl_cert_reqs=none", Options{}, "parameter ssl_cert_reqs"},
		{"bad cert reqs", "rediss://h?ssl_cert_reqs=maybe", Options{}, "parameter ssl_cert_reqs"},
		{"missing ca file", "rediss://h?ssl_ca_certs=/nonexistent/ca.pem", Options{}, "parameter ssl_ca_certs"},
		{"key without cert", "rediss://h?ssl_keyfile=/k.pem", Options{}, "parameter ssl_keyfile"},
		{"two servers on redis", "redis://a;redis://b", Options{}, "URL"},
		{"sentinel without master", "sentinel://s1:26379", Options{}, "master_name"},
		{"sentinel conflicting names", "sentinel://s1?master_name=a", Options{MasterName: "b"}, "master_name"},
		{"sentinel names differ in parts", "sentinel://s1?master_name=a;sentinel://s2?master_name=b", Options{}, "parameter master_name"},
		{"sentinel mixed scheme", "sentinel://s1;redis://s2?master_name=m", Options{}, "scheme"},
		{"master_name on redis", "redis://h?master_name=m", Options{}, "parameter master_name"},
		{"cluster db", "redis+cluster://h:7000/2", Options{}, "database"},
		{"cluster db param", "redis+cluster://h:7000?db=1", Options{}, "parameter db"},
		{"cluster empty seed", "redis+cluster://h:7000,,h:7001", Options{}, "host"},
		{"unix host", "unix://host/tmp/r.sock", Options{}, "socket path"},
		{"unix no path", "unix://", Options{}, "socket path"},
		{"unbracketed ipv6", "redis+cluster://::1:7000,h:1", Options{}, "host"},
		{"fragment", "redis://h#x", Options{}, "URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.url, tc.opts)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error about %s", tc.url, tc.part)
			}
			if !errors.Is(err, ErrBadURL) {
				t.Errorf("error %v does not wrap ErrBadURL", err)
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Part != tc.part {
				t.Errorf("Parse(%q) = %v, want part %q", tc.url, err, tc.part)
			}
		})
	}
}

func TestErrorsHidePasswords(t *testing.T) {
	for _, raw := range []string{
		"redis://:hunter2@h:abc/0",
		"sentinel://:hunter2@s1;sentinel://s2",
		"redis://h?password=hunter2&db=x",
		"redis+cluster://u:hunter2@h:1,h:2/5",
	} {
		_, err := Parse(raw, Options{})
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	ca := filepath.Join(dir, "ca.pem")
	key := filepath.Join(dir, "key.pem")
	both := filepath.Join(dir, "both.pem")
	notPEM := filepath.Join(dir, "x.pem")
	for name, data := range map[string][]byte{ca: certPEM, key: keyPEM, both: append(append([]byte{}, certPEM...), keyPEM...), notPEM: []byte("hello")} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse("rediss://h?ssl_ca_certs="+ca+"&ssl_cert_reqs=required&ssl_certfile="+ca+"&ssl_keyfile="+key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Universal.TLSConfig.RootCAs == nil || len(c.Universal.TLSConfig.Certificates) != 1 {
		t.Error("ssl_ca_certs/ssl_certfile were not applied")
	}
	// Python's load_cert_chain reads the key from the certificate file
	// when no key file is given.
	if _, err := Parse("rediss://h?ssl_certfile="+both, Options{}); err != nil {
		t.Errorf("certificate and key in one file: %v", err)
	}
	if _, err := Parse("rediss://h?ssl_ca_certs="+notPEM, Options{}); err == nil {
		t.Error("a file without certificates was accepted")
	}
	if _, err := Parse("rediss://h?ssl_certfile="+notPEM, Options{}); err == nil {
		t.Error("a bad client certificate was accepted")
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func TestNewClientKinds(t *testing.T) {
	for _, tc := range []struct {
		url  string
		kind string
	}{
		{"redis://127.0.0.1:1/0", "*redis.Client"},
		{"sentinel://127.0.0.1:1?master_name=m", "*redis.Client"}, // go-redis' failover client is a *Client
		{"redis+cluster://127.0.0.1:1", "*redis.ClusterClient"},
	} {
		c, err := NewClient(tc.url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := typeName(c); got != tc.kind {
			t.Errorf("%s: client is %s, want %s", tc.url, got, tc.kind)
		}
		_ = c.Close()
	}
}

func TestClientNameSanitized(t *testing.T) {
	c, err := Parse("redis://127.0.0.1:6379/0", Options{ClientName: "celeriac worker on é\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Universal.ClientName; got != "celeriac_worker_on___" {
		t.Errorf("ClientName = %q", got)
	}
}
