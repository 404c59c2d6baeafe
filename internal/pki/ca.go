package pki

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Groups, carried in a certificate's Organization.
const (
	GroupAdmins  = "shoal:admins"
	GroupNodes   = "shoal:nodes"
	GroupServers = "shoal:servers"
	GroupUsers   = "shoal:users"
)

// Files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// caValidity is how long a CA lasts; clockSkew backdates every certificate
// so a node whose clock is a little behind still accepts it.
const (
	caValidity = 10 * 365 * 24 * time.Hour
	clockSkew  = 5 * time.Minute
)

// CA signs the cluster's certificates.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// LoadOrCreateCA reads the CA from dir, or creates one there (the key
// 0600, the directory 0700) when dir has none.
func LoadOrCreateCA(dir string) (*CA, error) { return LoadOrCreateSealedCA(dir, nil) }

// LoadOrCreateSealedCA is LoadOrCreateCA for a CA whose key is, or is to
// be, sealed by passphrase (none: a plain key).
func LoadOrCreateSealedCA(dir string, passphrase []byte) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		plain, err := openKey(keyPEM, passphrase)
		if errors.Is(err, ErrSealed) {
			return nil, fmt.Errorf("cluster CA: %s is sealed by a passphrase: give it (--ca-passphrase-file)", keyPath)
		}
		if err != nil {
			return nil, fmt.Errorf("cluster CA: %s: %w", keyPath, err)
		}
		return parseCA(certPEM, plain)
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return nil, fmt.Errorf("cluster CA: %w", cerr)
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return nil, fmt.Errorf("cluster CA: %w", kerr)
	default:
		return nil, fmt.Errorf("cluster CA: %s and %s must both exist or both be absent", certPath, keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "shoal cluster CA", Organization: []string{"shoal"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if keyPEM, err = EncodeKey(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	stored := keyPEM
	if len(passphrase) > 0 {
		if stored, err = sealKey(keyPEM, passphrase); err != nil {
			return nil, err
		}
	}
	if err := writeFile(keyPath, stored, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA certificate: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA key: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("cluster CA certificate is not a CA")
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("cluster CA key does not match its certificate")
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: key}, nil
}

// Fingerprint is the CA certificate's SHA-256, in hex: what join tokens carry.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.Cert.Raw) }

// Fingerprint is the SHA-256 of a DER certificate, in lowercase hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Pool is a cert pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Request is what a certificate should say.
type Request struct {
	PublicKey crypto.PublicKey
	// Name is the identity (CommonName), Groups its Organization.
	Name   string
	Groups []string
	// DNSNames and IPs make it a server certificate for those names.
	DNSNames []string
	IPs      []net.IP
	// URIs name the object it was issued for (NodeURI).
	URIs []*url.URL
	TTL  time.Duration
}

// Issue signs a certificate for req, good for client and server
// authentication, and returns it PEM-encoded.
func (ca *CA) Issue(req Request) ([]byte, error) {
	if req.PublicKey == nil || req.Name == "" || req.TTL <= 0 {
		return nil, errors.New("issue: a public key, a name and a TTL are required")
	}
	now := time.Now()
	notAfter := now.Add(req.TTL)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: req.Name, Organization: req.Groups},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
		URIs:         req.URIs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue a certificate for %s: %w", req.Name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// IssueWithKey makes a new key, issues req for it and returns both,
// PEM-encoded: for credentials the CA's holder keeps or hands out itself.
func (ca *CA) IssueWithKey(req Request) (certPEM, keyPEM []byte, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, err
	}
	req.PublicKey = key.Public()
	if certPEM, err = ca.Issue(req); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = EncodeKey(key); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// NodeName is the identity of the node called name.
func NodeName(name string) string { return "node:" + name }

// NodeURI names the Node object a node certificate was issued for.
func NodeURI(name, uid string) *url.URL {
	return &url.URL{Scheme: "shoal", Opaque: "node/" + name + "/" + uid}
}

// UserName is the identity of the user called name.
func UserName(name string) string { return "user:" + name }

// UserURI names the User object a user certificate was issued for.
func UserURI(name, uid string) *url.URL {
	return &url.URL{Scheme: "shoal", Opaque: "user/" + name + "/" + uid}
}

// Identity is who a verified certificate speaks for.
type Identity struct {
	Name   string
	Groups []string
	// Node and NodeUID are set for a node certificate.
	Node, NodeUID string
	// User and UserUID are set for a user certificate.
	User, UserUID string
	// Token is the id of the bearer token the request carried instead of
	// a certificate (a user token), if any, and TokenUID its object's UID.
	Token, TokenUID string
	// NotAfter is when the credential expires: the certificate's NotAfter,
	// the token's expiry.
	NotAfter time.Time
}

// In says whether the identity is in group.
func (id Identity) In(group string) bool {
	for _, g := range id.Groups {
		if g == group {
			return true
		}
	}
	return false
}

// IdentityOf reads the identity of a certificate that has been verified
// against the CA.
func IdentityOf(cert *x509.Certificate) Identity {
	id := Identity{Name: cert.Subject.CommonName, Groups: cert.Subject.Organization, NotAfter: cert.NotAfter}
	object := func(kind, name string) string {
		for _, u := range cert.URIs {
			if rest, ok := strings.CutPrefix(u.Opaque, kind+"/"+name+"/"); u.Scheme == "shoal" && ok && rest != "" {
				return rest
			}
		}
		return ""
	}
	if node, ok := strings.CutPrefix(id.Name, "node:"); ok && id.In(GroupNodes) {
		if uid := object("node", node); uid != "" {
			id.Node, id.NodeUID = node, uid
		}
	}
	if user, ok := strings.CutPrefix(id.Name, "user:"); ok && id.In(GroupUsers) {
		if uid := object("user", user); uid != "" {
			id.User, id.UserUID = user, uid
		}
	}
	return id
}

// NewKey makes an ECDSA P-256 key pair.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// EncodeKey PEM-encodes a private key (PKCS #8).
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM private key (PKCS #8, or SEC 1 EC).
func ParseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return s, nil
}

// ParseCert reads the first certificate of a PEM bundle.
func ParseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PEM block %q is not a certificate", block.Type)
	}
	return x509.ParseCertificate(block.Bytes)
}

// EncodePublicKey PEM-encodes a public key (PKIX), as a join request
// carries it.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads a PEM public key; only ECDSA P-256 and Ed25519 are
// accepted.
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s: want P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%T keys are not accepted: use ECDSA P-256 or Ed25519", pub)
	}
	return pub, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// writeFile writes atomically with mode.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// KeyPEM is the CA's private key, in PEM: only for another server of the
// cluster, which signs certificates too.
func (ca *CA) KeyPEM() ([]byte, error) { return EncodeKey(ca.key) }

// InstallCA writes a CA received from the cluster into dir (the key 0600,
// sealed when passphrase is set) and returns it. A dir that already holds
// a CA must hold this one.
func InstallCA(dir string, certPEM, keyPEM, passphrase []byte) (*CA, error) {
	ca, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, CACertFile)); err == nil {
		if old, err := ParseCert(b); err != nil || Fingerprint(old.Raw) != ca.Fingerprint() {
			return nil, fmt.Errorf("cluster CA: %s holds another cluster's CA; use a new --data-dir", dir)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	stored := keyPEM
	if len(passphrase) > 0 {
		if stored, err = sealKey(keyPEM, passphrase); err != nil {
			return nil, err
		}
	}
	if err := writeFile(filepath.Join(dir, CAKeyFile), stored, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// SealForServers encrypts b so that only the cluster's servers, which
// hold the CA key, can read it (AES-256-GCM under a key derived from the
// CA key with HKDF-SHA256): what servers share through the store.
func (ca *CA) SealForServers(b []byte, purpose string) ([]byte, error) {
	aead, err := ca.serversAEAD(purpose)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, b, []byte(purpose)), nil
}

// OpenForServers reverses SealForServers.
func (ca *CA) OpenForServers(sealed []byte, purpose string) ([]byte, error) {
	aead, err := ca.serversAEAD(purpose)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed data too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(purpose))
}

func (ca *CA) serversAEAD(purpose string) (cipher.AEAD, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, der, nil, "shoal servers: "+purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
