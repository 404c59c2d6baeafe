package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
)

// FetchCA connects to server without trusting anything yet and picks, from
// the chain it presents, the CA whose SHA-256 is fingerprint; the server's
// own certificate must chain to it. Nothing is sent but the handshake: a
// joining machine checks the cluster before its token goes out.
func FetchCA(ctx context.Context, server, fingerprint string) (*x509.Certificate, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(server, "https://"), "/")
	d := &tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}} // checked below, by fingerprint
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("join: reach %s: %w", server, err)
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	for _, c := range chain {
		if Fingerprint(c.Raw) != fingerprint {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(c)
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			return nil, fmt.Errorf("join: the server at %s presents the token's CA but its certificate does not chain to it: %w", server, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("join: the server at %s is not the cluster the token is for (no CA with fingerprint %.12s… in its chain); nothing was sent", server, fingerprint)
}
