package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Keypair is a certificate and its key that can be replaced while
// connections use it (a node's certificate rotates under a live agent).
type Keypair struct {
	p atomic.Pointer[tls.Certificate]
}

// NewKeypair parses a PEM certificate and key into a Keypair.
func NewKeypair(certPEM, keyPEM []byte) (*Keypair, error) {
	k := &Keypair{}
	return k, k.Set(certPEM, keyPEM)
}

// Set replaces the certificate and key.
func (k *Keypair) Set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	k.p.Store(&c)
	return nil
}

// Leaf is the current certificate.
func (k *Keypair) Leaf() *x509.Certificate { return k.p.Load().Leaf }

// ServerTLS is a TLS 1.3 server config presenting k and verifying client
// certificates against roots when a client offers one (the handler decides
// what an unauthenticated request may do).
func ServerTLS(roots *x509.CertPool, k *Keypair) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      roots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.p.Load(), nil },
	}
}

// ClientTLS is a TLS 1.3 client config trusting roots only and, when k is
// not nil, presenting it.
func ClientTLS(roots *x509.CertPool, k *Keypair) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots}
	if k != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return k.p.Load(), nil }
	}
	return cfg
}

// PeerTLS is a client config for reaching a peer by identity rather than
// by host name (an agent at whatever address it reported): the peer's
// certificate must chain to roots and speak for want.
func PeerTLS(roots *x509.CertPool, k *Keypair, want string) *tls.Config {
	cfg := ClientTLS(roots, k)
	cfg.InsecureSkipVerify = true // verified below, against roots and want
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the peer presented no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return err
		}
		if got := cs.PeerCertificates[0].Subject.CommonName; got != want {
			return fmt.Errorf("the peer is %q, not %q", got, want)
		}
		return nil
	}
	return cfg
}
