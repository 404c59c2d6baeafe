package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
)

// Files of a node's identity, in DATA_DIR/pki.
const (
	nodeKeyFile  = "node.key"
	nodeCertFile = "node.crt"
	caFile       = "ca.crt"
)

// ErrAlreadyJoined is a join refused because a node of that name exists:
// remove it first (`shoal node remove`).
var ErrAlreadyJoined = errors.New("a node of that name has already joined")

// Identity is a node's credentials: its own key (made on the node, never
// sent anywhere), the certificate the cluster signed for it, and the
// cluster CA it trusts.
type Identity struct {
	Node    string
	CA      *x509.Certificate
	CAPEM   []byte
	Keypair *pki.Keypair
	dir     string

	mu      sync.Mutex
	onRenew []func()
}

// OnRenew runs f after every renewal of the certificate: the node's other
// keys (the overlay's) are replaced with it.
func (id *Identity) OnRenew(f func()) {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.onRenew = append(id.onRenew, f)
}

// Pool is the cluster CA as a cert pool.
func (id *Identity) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(id.CA)
	return p
}

// ClientTLS is how the node reaches the server.
func (id *Identity) ClientTLS() *tls.Config { return pki.ClientTLS(id.Pool(), id.Keypair) }

// ServerTLS is how the node's agent serves the server (logs, exec).
func (id *Identity) ServerTLS() *tls.Config { return pki.ServerTLS(id.Pool(), id.Keypair) }

// LoadOrJoin returns the node's identity from dir, or joins the cluster at
// server as req says (its token, node name, labels and subnet) and keeps
// what it got in dir. A token is needed only the first time.
func LoadOrJoin(ctx context.Context, server string, req api.JoinRequest, dir string) (*Identity, error) {
	node := req.Node
	id, err := loadIdentity(node, dir)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if req.Token == "" {
		return nil, fmt.Errorf("node %q has not joined a cluster (no credentials in %s): pass --token from `shoal token create` on a server", node, dir)
	}
	return join(ctx, server, req, dir)
}

func loadIdentity(node, dir string) (*Identity, error) {
	read := func(f string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, f)) }
	keyPEM, err := read(nodeKeyFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(nodeCertFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := read(caFile)
	if err != nil {
		return nil, err
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, caFile), err)
	}
	kp, err := pki.NewKeypair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("node credentials in %s: %w", dir, err)
	}
	if got := kp.Leaf().Subject.CommonName; got != pki.NodeName(node) {
		return nil, fmt.Errorf("the credentials in %s are for %q, not node %q: start the agent with that --node-name, or remove %s and join again", dir, got, node, dir)
	}
	return &Identity{Node: node, CA: ca, CAPEM: caPEM, Keypair: kp, dir: dir}, nil
}

// join verifies the cluster by the CA fingerprint in the token before it
// sends anything: the server's TLS chain must hold that CA and its
// certificate must chain to it. Only then does the token go out.
func join(ctx context.Context, server string, req api.JoinRequest, dir string) (*Identity, error) {
	node := req.Node
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(server, "https://") {
		return nil, fmt.Errorf("--server %q: joining needs an https:// server URL", server)
	}
	ca, err := pki.FetchCA(ctx, server, tok.CAFingerprint)
	if err != nil {
		return nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	pubPEM, err := pki.EncodePublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var creds api.Credentials
	req.PublicKey = string(pubPEM)
	if err := client.NewTLS(server, pki.ClientTLS(pool, nil)).Do(ctx, http.MethodPost, "/api/v1/join", req, &creds); err != nil {
		if errors.Is(err, client.ErrAlreadyExists) {
			err = fmt.Errorf("%w: %w", err, ErrAlreadyJoined)
		}
		return nil, fmt.Errorf("join %s as node %q: %w", server, node, err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	id := &Identity{Node: node, CA: ca, CAPEM: []byte(creds.CA), dir: dir}
	if id.Keypair, err = pki.NewKeypair([]byte(creds.Certificate), keyPEM); err != nil {
		return nil, fmt.Errorf("join: the server's certificate: %w", err)
	}
	if err := id.save(keyPEM, []byte(creds.Certificate)); err != nil {
		return nil, err
	}
	return id, nil
}

func (id *Identity) save(keyPEM, certPEM []byte) error {
	if err := os.MkdirAll(id.dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{caFile, id.CAPEM, 0o644}, {nodeKeyFile, keyPEM, 0o600}, {nodeCertFile, certPEM, 0o644}} {
		tmp := filepath.Join(id.dir, f.name+".tmp")
		if err := os.WriteFile(tmp, f.b, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(id.dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// renewAt is when a certificate should be replaced: two thirds through
// its life.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// RotateLoop renews the node's certificate, for a new key, when two thirds
// of its life have passed, until ctx ends. A failed renewal is retried
// every ten seconds while the certificate lasts.
func (id *Identity) RotateLoop(ctx context.Context, server string, log *slog.Logger) {
	for {
		wait := time.Until(renewAt(id.Keypair.Leaf()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		if err := id.renew(ctx, server); err != nil {
			log.Warn("node certificate renewal failed; retrying", "err", err, "expires", id.Keypair.Leaf().NotAfter)
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			continue
		}
		log.Info("node certificate renewed", "expires", id.Keypair.Leaf().NotAfter)
		id.mu.Lock()
		fs := slices.Clone(id.onRenew)
		id.mu.Unlock()
		for _, f := range fs {
			f()
		}
	}
}

func (id *Identity) renew(ctx context.Context, server string) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	pubPEM, err := pki.EncodePublicKey(key.Public())
	if err != nil {
		return err
	}
	var creds api.Credentials
	path := client.Path(nodeKind, "", id.Node) + "/certificate"
	if err := client.NewTLS(server, id.ClientTLS()).Do(ctx, http.MethodPost, path, api.CertificateRequest{PublicKey: string(pubPEM)}, &creds); err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	if err := id.save(keyPEM, []byte(creds.Certificate)); err != nil {
		return err
	}
	return id.Keypair.Set([]byte(creds.Certificate), keyPEM)
}
