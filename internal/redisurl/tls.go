package redisurl

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// tlsParams are kombu's ssl_* query parameters.
type tlsParams struct {
	first         string // first ssl_* parameter seen, for the error message
	certReqs      string // required, optional or none
	caCerts       string
	certFile      string
	keyFile       string
	checkHostname *bool
}

func (t *tlsParams) set(key, v string) error {
	if t.first == "" {
		t.first = key
	}
	switch key {
	case "ssl_cert_reqs":
		switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(v), "CERT_")) {
		case "required":
			t.certReqs = "required"
		case "optional":
			t.certReqs = "optional"
		case "none":
			t.certReqs = "none"
		default:
			return fmt.Errorf("%q: use CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE", v)
		}
	case "ssl_ca_certs":
		t.caCerts = v
	case "ssl_certfile":
		t.certFile = v
	case "ssl_keyfile":
		t.keyFile = v
	case "ssl_check_hostname":
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		t.checkHostname = &b
	}
	return nil
}

// finishTLS builds the TLS configuration for rediss:// URLs and refuses
// ssl_* parameters elsewhere, as Celery does.
func (p *parser) finishTLS(enabled bool, scheme string) error {
	t := &p.tls
	if !enabled {
		if t.first != "" {
			return p.fail("parameter "+t.first, "TLS parameters need a rediss:// URL, not %s://", scheme)
		}
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.caCerts != "" {
		pem, err := os.ReadFile(t.caCerts)
		if err != nil {
			return p.fail("parameter ssl_ca_certs", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return p.fail("parameter ssl_ca_certs", "%s holds no PEM certificate", t.caCerts)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.certFile != "":
		key := t.keyFile
		if key == "" {
			key = t.certFile // Python's load_cert_chain reads the key from the certificate file
		}
		cert, err := tls.LoadX509KeyPair(t.certFile, key)
		if err != nil {
			return p.fail("parameter ssl_certfile", "%v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.keyFile != "":
		return p.fail("parameter ssl_keyfile", "given without ssl_certfile")
	}
	switch {
	case t.certReqs == "none":
		cfg.InsecureSkipVerify = true
	case t.checkHostname != nil && !*t.checkHostname:
		// Verify the chain but not the name, as redis-py does by default.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("redisurl: server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	p.out.Universal.TLSConfig = cfg
	return nil
}
