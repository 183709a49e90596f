package amqp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/celeriac/celeriac/broker"
	"github.com/celeriac/celeriac/internal/testenv"
)

// tlsFront terminates TLS with a fresh self-signed certificate and
// forwards to the plain RabbitMQ listener. It returns its address and the
// CA file that verifies it.
func tlsFront(t *testing.T, target string) (addr, caFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), caFile
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	raw := testenv.AMQPURL(t)
	u, _ := url.Parse(raw)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	addr, ca := tlsFront(t, host)
	rec := newRecorder(t, raw)

	// Unknown CA: refused.
	bad := *u
	bad.Scheme, bad.Host = "amqps", addr
	if _, err := broker.Open(ctx, bad.String(), broker.Options{ConnectTimeout: 5 * time.Second}); err == nil {
		t.Fatal("TLS with an unknown CA was accepted")
	}
	good := bad
	good.RawQuery = url.Values{"ssl_ca_certs": {ca}}.Encode()
	b := openWith(t, rec, []string{good.String()}, broker.Options{})
	q := broker.TaskQueue(testenv.Prefix(t))
	if err := b.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, broker.Publishing{RoutingKey: q.Name, Message: msg("over tls")}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(ctx, broker.ConsumeOptions{Queues: []broker.Queue{q}, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Cancel(ctx)
	if d := recv(t, c); string(d.Message.Body) != "over tls" {
		t.Fatalf("got %q", d.Message.Body)
	} else {
		_ = d.Ack(ctx)
	}
	// CERT_NONE skips verification, as kombu's ssl_cert_reqs does.
	insecure := bad
	insecure.RawQuery = "ssl_cert_reqs=CERT_NONE"
	b2 := openWith(t, rec, []string{insecure.String()}, broker.Options{})
	if err := b2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
