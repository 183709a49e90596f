package dbproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplicaKilled stops a replica in the middle of a stream of reads:
// reads carry on, on the primary, with at most the in-flight one failing.
func TestReplicaKilled(t *testing.T) {
	t.Parallel()
	_, rep, p := proxyOverOwnReplica(t)
	ctx := context.Background()
	c := connect(t, proxyURL(p, "postgres", "", "postgres"))
	eventually(t, "reads on the replica", func() bool { return inRecovery(t, c, "SELECT pg_is_in_recovery()") })
	failures := 0
	onPrimary := 0
	for i := 0; i < 400 && onPrimary < 50; i++ {
		if i == 20 {
			rep.stop()
		}
		var rec bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
			failures++
			continue
		}
		if i > 20 && !rec {
			onPrimary++
		}
	}
	if failures > 1 || onPrimary < 50 {
		t.Fatalf("after the replica died: %d failed reads, %d on the primary", failures, onPrimary)
	}
	p.router.mu.Lock()
	up := p.router.replicas[0].up
	p.router.mu.Unlock()
	if up {
		t.Error("dead replica still marked up")
	}
}

// TestTLS: with a certificate the proxy speaks TLS to clients that ask;
// without one it refuses SSLRequest and sslmode=require fails.
func TestTLS(t *testing.T) {
	t.Parallel()
	cl := testCluster(t)
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	p := startProxy(t, Config{Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthTrust,
		TLSCert: certFile, TLSKey: keyFile})
	ctx := context.Background()
	url := "postgres://postgres@" + p.Addr().String() + "/postgres?sslmode=require"
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)

	plain := startProxy(t, Config{Primary: cl.primary.url("postgres", "", "postgres"), AuthType: AuthTrust})
	if c, err := pgx.Connect(ctx, "postgres://postgres@"+plain.Addr().String()+"/postgres?sslmode=require"); err == nil {
		c.Close(ctx)
		t.Fatal("sslmode=require connected to a proxy without TLS")
	}
	c, err = pgx.Connect(ctx, "postgres://postgres@"+plain.Addr().String()+"/postgres?sslmode=prefer")
	if err != nil {
		t.Fatalf("sslmode=prefer: %v", err)
	}
	c.Close(ctx)
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
