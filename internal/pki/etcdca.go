package pki

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
)

// EtcdCACertFile is where a server keeps the etcd CA's certificate (its
// key is never written: it is derived again at every start).
const EtcdCACertFile = "etcd-ca.crt"

// EtcdCA is the CA the embedded etcd trusts, and the only one: its
// members' serving and peer certificates and the servers' etcd client
// certificates come from it, so no certificate the cluster CA issues to a
// node, a user or an admin opens etcd.
//
// Its Ed25519 key is derived from the cluster CA's key (HKDF-SHA256), and
// its certificate from that key and the cluster CA's validity, so every
// holder of the cluster CA key — the servers, and only they — makes the
// very same etcd CA: a server that joins gets it with the cluster CA, and
// a cluster made before the etcd CA existed has one on every server at
// its first start, with nothing to hand round.
func (ca *CA) EtcdCA() (*CA, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	seed, err := hkdf.Key(sha256.New, der, nil, "shoal etcd CA", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]),
		Subject:               pkix.Name{CommonName: "shoal etcd CA", Organization: []string{"shoal"}},
		NotBefore:             ca.Cert.NotBefore,
		NotAfter:              ca.Cert.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	// Ed25519 signatures are deterministic: the certificate is the same
	// bytes on every server.
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), key: key}, nil
}
