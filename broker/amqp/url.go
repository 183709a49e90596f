package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrBadURL is returned for a broker URL this transport cannot use.
var ErrBadURL = errors.New("amqp: bad broker URL")

// target is one parsed broker URL: where to dial and how to log in.
type target struct {
	redacted  string // the URL with its password hidden, for logs and errors
	addr      string // host:port
	host      string
	user      string
	password  string
	vhost     string
	tls       *tls.Config // nil for plain TCP
	heartbeat time.Duration
	timeout   time.Duration
}

// userinfoRE finds "user:password@" so that a URL Go cannot parse can
// still be logged without its password.
var userinfoRE = regexp.MustCompile(`://([^:/@]*):[^/]*@`)

// redact hides the password of raw, parseable or not.
func redact(raw string) string {
	return userinfoRE.ReplaceAllString(raw, "://$1:xxxxx@")
}

// parseURL reads a Celery/kombu broker URL:
//
//	amqp://user:pass@host:port/vhost?heartbeat=30&ssl_ca_certs=/ca.pem
//
// An empty path or "/" is vhost "/" (kombu's default), "//" is "/" too, and
// "/%2F" spells it escaped. amqp://host alone means guest/guest on 5672
// (5671 for amqps). The schemes pyamqp and pyamqps are Celery's aliases.
func parseURL(raw string) (target, error) {
	red := redact(raw)
	fail := func(format string, args ...any) (target, error) {
		return target{}, fmt.Errorf("%w %q: %s", ErrBadURL, red, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the raw URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("%v", err)
	}
	t := target{redacted: red, user: "guest", password: "guest", vhost: "/"}
	port := "5672"
	switch u.Scheme {
	case "amqp", "pyamqp":
	case "amqps", "pyamqps":
		port = "5671"
		t.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return fail("scheme %q is not amqp, amqps, pyamqp or pyamqps", u.Scheme)
	}
	if u.Opaque != "" {
		return fail("missing // after the scheme")
	}
	t.host = u.Hostname()
	if t.host == "" {
		t.host = "localhost"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return fail("port %q out of range", p)
		}
		port = p
	}
	t.addr = net.JoinHostPort(t.host, port)
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			t.user = name
		}
		if pw, ok := u.User.Password(); ok {
			t.password = pw
		}
	}
	// kombu: the vhost is the path without its first slash; empty means "/".
	if path := u.EscapedPath(); len(path) > 1 {
		v, err := url.PathUnescape(path[1:])
		if err != nil {
			return fail("vhost: %v", err)
		}
		t.vhost = v
	}
	q := u.Query()
	if v := q.Get("heartbeat"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 65535 {
			return fail("heartbeat %q: want seconds", v)
		}
		t.heartbeat = time.Duration(f * float64(time.Second))
		if t.heartbeat == 0 {
			t.heartbeat = -1 // given as 0: the server's interval
		}
	}
	if v := q.Get("connect_timeout"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fail("connect_timeout %q: want seconds", v)
		}
		t.timeout = time.Duration(f * float64(time.Second))
	}
	if t.tls != nil {
		if err := tlsParams(t.tls, q, t.host); err != nil {
			return fail("%v", err)
		}
	} else if hasSSLParams(q) {
		return fail("ssl_* options need the amqps scheme")
	}
	return t, nil
}

func hasSSLParams(q url.Values) bool {
	for k := range q {
		if strings.HasPrefix(k, "ssl_") {
			return true
		}
	}
	return false
}

// tlsParams applies kombu's broker_use_ssl keys given as query parameters:
// ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs (CERT_NONE turns
// verification off) and ssl_server_hostname. Without them the system roots
// verify the server.
func tlsParams(c *tls.Config, q url.Values, host string) error {
	c.ServerName = host
	if v := q.Get("ssl_server_hostname"); v != "" {
		c.ServerName = v
	}
	switch v := q.Get("ssl_cert_reqs"); v {
	case "", "CERT_REQUIRED", "required":
	case "CERT_NONE", "none":
		c.InsecureSkipVerify = true
	case "CERT_OPTIONAL", "optional":
		// Go cannot verify only when a certificate is offered; a server
		// always offers one, so this is the same as required.
	default:
		return fmt.Errorf("ssl_cert_reqs %q: want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE", v)
	}
	if f := q.Get("ssl_ca_certs"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("ssl_ca_certs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ssl_ca_certs %s: no PEM certificates", f)
		}
		c.RootCAs = pool
	}
	cert, key := q.Get("ssl_certfile"), q.Get("ssl_keyfile")
	if cert != "" || key != "" {
		if key == "" {
			key = cert // kombu allows the key inside the certificate file
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("ssl_certfile/ssl_keyfile: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return nil
}
