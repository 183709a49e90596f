package amqp

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseURL(t *testing.T) {
	type want struct {
		Addr, User, Password, Vhost string
		TLS, Insecure               bool
		Heartbeat                   time.Duration
	}
	tests := []struct {
		name, url string
		want      want
	}{
		{"celery default", "amqp://guest:guest@localhost:5672//", want{Addr: "localhost:5672", User: "guest", Password: "guest", Vhost: "/"}},
		{"empty path", "amqp://u:p@h:5673", want{Addr: "h:5673", User: "u", Password: "p", Vhost: "/"}},
		{"slash path", "amqp://u:p@h/", want{Addr: "h:5672", User: "u", Password: "p", Vhost: "/"}},
		{"named vhost", "amqp://u:p@h/prod", want{Addr: "h:5672", User: "u", Password: "p", Vhost: "prod"}},
		{"escaped slash", "amqp://u:p@h/%2F", want{Addr: "h:5672", User: "u", Password: "p", Vhost: "/"}},
		{"vhost with slash", "amqp://u:p@h//x", want{Addr: "h:5672", User: "u", Password: "p", Vhost: "/x"}},
		{"host only", "amqp://rabbit", want{Addr: "rabbit:5672", User: "guest", Password: "guest", Vhost: "/"}},
		{"no host", "amqp://", want{Addr: "localhost:5672", User: "guest", Password: "guest", Vhost: "/"}},
		{"pyamqp alias", "pyamqp://a:b@h//", want{Addr: "h:5672", User: "a", Password: "b", Vhost: "/"}},
		{"amqps port", "amqps://a:b@h//", want{Addr: "h:5671", User: "a", Password: "b", Vhost: "/", TLS: true}},
		{"pyamqps alias", "pyamqps://h", want{Addr: "h:5671", User: "guest", Password: "guest", Vhost: "/", TLS: true}},
		{"cert none", "amqps://h/?ssl_cert_reqs=CERT_NONE", want{Addr: "h:5671", User: "guest", Password: "guest", Vhost: "/", TLS: true, Insecure: true}},
		{"escaped password", "amqp://u:p%40ss%2Fw@h//", want{Addr: "h:5672", User: "u", Password: "p@ss/w", Vhost: "/"}},
		{"user without password", "amqp://bob@h//", want{Addr: "bob" + "", User: "", Password: "", Vhost: ""}},
		{"ipv6", "amqp://u:p@[::1]:5672//", want{Addr: "[::1]:5672", User: "u", Password: "p", Vhost: "/"}},
		{"heartbeat", "amqp://h//?heartbeat=30", want{Addr: "h:5672", User: "guest", Password: "guest", Vhost: "/", Heartbeat: 30 * time.Second}},
		{"heartbeat off", "amqp://h//?heartbeat=0", want{Addr: "h:5672", User: "guest", Password: "guest", Vhost: "/", Heartbeat: -1}},
	}
	// A user without a password keeps kombu's default password.
	tests[13].want = want{Addr: "h:5672", User: "bob", Password: "guest", Vhost: "/"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := parseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got := want{Addr: tg.addr, User: tg.user, Password: tg.password, Vhost: tg.vhost,
				TLS: tg.tls != nil, Heartbeat: tg.heartbeat}
			if tg.tls != nil {
				got.Insecure = tg.tls.InsecureSkipVerify
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ name, url, want string }{
		{"scheme", "redis://u:secret@h//", "scheme"},
		{"port", "amqp://u:secret@h:99999//", "port"},
		{"unparseable", "amqp://u:secret@h:port:x//", "amqp: bad broker URL"},
		{"control char", "amqp://u:secret@h/\x7f\x00", "amqp: bad broker URL"},
		{"heartbeat", "amqp://u:secret@h//?heartbeat=soon", "heartbeat"},
		{"ssl on plain", "amqp://u:secret@h//?ssl_ca_certs=/x", "amqps"},
		{"missing ca", "amqps://u:secret@h//?ssl_ca_certs=/nonexistent.pem", "ssl_ca_certs"},
		{"cert reqs", "amqps://u:secret@h//?ssl_cert_reqs=maybe", "ssl_cert_reqs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseURL(tc.url)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrBadURL mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://u:secret@h//":     "amqp://u:xxxxx@h//",
		"amqp://u:se:cr@et@h:1//": "amqp://u:xxxxx@h:1//",
		"amqp://h//":              "amqp://h//",
		"amqp://:secret@h//":      "amqp://:xxxxx@h//",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"amqp://guest:guest@localhost:5672//", "amqps://a:b@h/v?ssl_cert_reqs=CERT_NONE",
		"pyamqp://h", "amqp://u:p@[::1]:1/%2F?heartbeat=1.5", "amqp://u:p%zz@h", "amqp://:@:0/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseURL(raw)
		if err != nil {
			if strings.Contains(raw, ":hunter2@") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
			return
		}
		if tg.addr == "" || tg.vhost == "" || tg.user == "" {
			t.Fatalf("accepted %q with empty fields: %+v", raw, tg)
		}
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) >= 3 && strings.Contains(tg.redacted, ":"+pw+"@") {
				t.Fatalf("redacted form %q shows the password", tg.redacted)
			}
		}
	})
}
