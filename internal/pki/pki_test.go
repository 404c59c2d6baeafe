package pki

import (
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCAIsCreatedOnceAndKeptPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Error("a second load made a new CA")
	}
	// Half a CA is an error, not a new CA.
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), "must both exist") {
		t.Errorf("a CA without its key: %v", err)
	}
}

func TestIssuedCertificatesCarryIdentity(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := NewKey()
	pemCert, err := ca.Issue(Request{PublicKey: key.Public(), Name: NodeName("n1"), Groups: []string{GroupNodes}, URIs: []*url.URL{NodeURI("n1", "uid-1")}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCert(pemCert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("does not verify as a client certificate: %v", err)
	}
	id := IdentityOf(cert)
	if id.Name != "node:n1" || id.Node != "n1" || id.NodeUID != "uid-1" || !id.In(GroupNodes) || id.In(GroupAdmins) {
		t.Errorf("identity %+v", id)
	}
	// A node name in the CN without the group, or a URI for another node,
	// names no node.
	for _, req := range []Request{
		{Name: NodeName("n1"), URIs: []*url.URL{NodeURI("n1", "u")}},
		{Name: NodeName("n1"), Groups: []string{GroupNodes}, URIs: []*url.URL{NodeURI("n2", "u")}},
	} {
		req.PublicKey, req.TTL = key.Public(), time.Hour
		p, _ := ca.Issue(req)
		c, _ := ParseCert(p)
		if id := IdentityOf(c); id.Node != "" {
			t.Errorf("%+v names node %q", req, id.Node)
		}
	}
}

func TestTokens(t *testing.T) {
	tok := NewToken(strings.Repeat("ab", 32))
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if !got.Matches(tok.SecretHash()) {
		t.Error("a token does not match its own hash")
	}
	other := NewToken(tok.CAFingerprint)
	if other.Matches(tok.SecretHash()) {
		t.Error("another token matches")
	}
	for _, bad := range []string{
		"", "SWMTKN-1-x", "SHOAL1-", "SHOAL1-" + strings.Repeat("a", 64),
		"SHOAL1-" + strings.Repeat("A", 64) + "-" + strings.Repeat("a", 16) + "." + strings.Repeat("a", 32),
		"SHOAL1-" + strings.Repeat("a", 64) + "-" + strings.Repeat("a", 15) + "." + strings.Repeat("a", 32),
		"SHOAL1-" + strings.Repeat("a", 64) + "-" + strings.Repeat("a", 16) + "." + strings.Repeat("a", 33),
		"SHOAL1-" + strings.Repeat("a", 64) + "-" + strings.Repeat("a", 16) + strings.Repeat("a", 32),
	} {
		if _, err := ParseToken(bad); err == nil || !strings.HasPrefix(err.Error(), "join token: ") {
			t.Errorf("ParseToken(%q) = %v, want a join token error", bad, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(NewToken(strings.Repeat("0", 64)).String())
	f.Add("SHOAL1--.")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		// What parses prints back to itself.
		if again, err := ParseToken(tok.String()); err != nil || again != tok {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %v", s, tok, err)
		}
	})
}

func FuzzParseCertificateAndKey(f *testing.F) {
	ca, err := LoadOrCreateCA(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	key, _ := NewKey()
	keyPEM, _ := EncodeKey(key)
	pub, _ := EncodePublicKey(key.Public())
	f.Add(ca.CertPEM)
	f.Add(keyPEM)
	f.Add(pub)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// None of them may panic, whatever the input.
		if c, err := ParseCert(b); err == nil {
			_ = IdentityOf(c)
		}
		_, _ = ParseKey(b)
		_, _ = ParsePublicKey(b)
		_, _ = NewKeypair(b, b)
	})
}

func TestSealedCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateSealedCA(dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !strings.Contains(string(b), "SHOAL SEALED PRIVATE KEY") || strings.Contains(string(b), "BEGIN PRIVATE KEY") {
		t.Fatalf("ca.key is not sealed:\n%s", b)
	}
	if _, err := LoadOrCreateCA(dir); err == nil || !strings.Contains(err.Error(), "sealed by a passphrase") {
		t.Errorf("no passphrase: %v", err)
	}
	if _, err := LoadOrCreateSealedCA(dir, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("a wrong passphrase: %v", err)
	}
	again, err := LoadOrCreateSealedCA(dir, []byte("correct horse"))
	if err != nil || again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("the right passphrase: %v", err)
	}
	key, _ := NewKey()
	if _, err := again.Issue(Request{PublicKey: key.Public(), Name: "x", TTL: time.Hour}); err != nil {
		t.Errorf("the opened CA does not sign: %v", err)
	}
}

// What one server seals for the servers, another server with the same CA
// opens; a server of another cluster, or another purpose, cannot.
func TestSealForServers(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	same, err := InstallCA(t.TempDir(), ca.CertPEM, keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ca.SealForServers([]byte("keys"), "secret keys")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := same.OpenForServers(sealed, "secret keys"); err != nil || string(b) != "keys" {
		t.Errorf("another server of the cluster: %q %v", b, err)
	}
	if _, err := other.OpenForServers(sealed, "secret keys"); err == nil {
		t.Error("another cluster's CA opened it")
	}
	if _, err := same.OpenForServers(sealed, "something else"); err == nil {
		t.Error("another purpose opened it")
	}
	if _, err := InstallCA(t.TempDir(), ca.CertPEM, []byte("junk"), nil); err == nil {
		t.Error("InstallCA took a key that is not the CA's")
	}
}

// The etcd CA is the same on every holder of the cluster CA key, another
// cluster's differs, and the cluster CA's certificates do not chain to it.
func TestEtcdCAIsDerivedFromTheClusterCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := ca.EtcdCA()
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateCA(dir) // another server: the same CA, read from disk
	if err != nil {
		t.Fatal(err)
	}
	e2, err := again.EtcdCA()
	if err != nil {
		t.Fatal(err)
	}
	if string(e1.CertPEM) != string(e2.CertPEM) {
		t.Fatal("two derivations from one cluster CA made different etcd CAs")
	}
	other, _ := LoadOrCreateCA(t.TempDir())
	e3, _ := other.EtcdCA()
	if string(e3.CertPEM) == string(e1.CertPEM) {
		t.Fatal("two clusters share an etcd CA")
	}
	if !e1.Cert.IsCA || e1.Fingerprint() == ca.Fingerprint() {
		t.Fatalf("etcd CA %q: want a CA of its own", e1.Cert.Subject)
	}
	key, _ := NewKey()
	node, err := ca.Issue(Request{PublicKey: key.Public(), Name: NodeName("n1"), Groups: []string{GroupNodes}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := ParseCert(node)
	if _, err := nc.Verify(x509.VerifyOptions{Roots: e1.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("a node certificate of the cluster CA verifies against the etcd CA")
	}
	srv, err := e2.Issue(Request{PublicKey: key.Public(), Name: "server:h", Groups: []string{GroupServers}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ParseCert(srv)
	if _, err := sc.Verify(x509.VerifyOptions{Roots: e1.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("a certificate of the etcd CA does not verify against it: %v", err)
	}
}
