package server

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// maxJoinBytes bounds a join or renewal request.
const maxJoinBytes = 64 << 10

// DefaultNodeCertTTL is how long a node certificate lasts; agents renew at
// two thirds of it.
const DefaultNodeCertTTL = 30 * 24 * time.Hour

// join admits a machine holding a join token as a node: it creates the
// Node and signs a certificate for the machine's public key that names
// that Node (so removing the Node revokes it). Nothing is stored unless
// the whole join succeeds.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	if s.ca == nil {
		writeError(w, fmt.Errorf("this server has no CA: %w", errBadRequest))
		return
	}
	b, err := readBody(r, maxJoinBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := decodeJoinRequest(b)
	if err != nil {
		writeError(w, err)
		return
	}
	creds, err := s.admit(r.Context(), req)
	if err != nil {
		s.log.Info("join refused", "node", req.Node, "from", r.RemoteAddr, "err", err)
		writeError(w, err)
		return
	}
	s.log.Info("node joined", "node", req.Node, "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, creds)
}

func (s *Server) admit(ctx context.Context, req api.JoinRequest) (*api.Credentials, error) {
	const attempts = 60
	for attempt := 1; ; attempt++ {
		creds, err := s.admitOnce(ctx, req)
		// Another join spent a use of the token meanwhile: read it again,
		// after a pause that grows and differs between the joins racing
		// (many machines joining with one token at once).
		if !errors.Is(err, store.ErrConflict) {
			return creds, err
		}
		if attempt == attempts {
			return nil, fmt.Errorf("join token: %d other joins kept spending it at the same moment; join again: %w", attempts, err)
		}
		pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(5*time.Millisecond)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// admitOnce creates the Node and spends one use of the token in one
// transaction, so a refused join spends nothing and two machines racing
// for a token's last use cannot both join.
func (s *Server) admitOnce(ctx context.Context, req api.JoinRequest) (*api.Credentials, error) {
	stored, err := s.checkToken(ctx, req.Token, "join token")
	if err != nil {
		return nil, err
	}
	if stored.Spec.Role != api.TokenRoleAgent {
		return nil, fmt.Errorf("join token %s is for role %s; a node joins with an agent token: %w", stored.Metadata.Name, stored.Spec.Role, errForbidden)
	}
	if err := spendJoin(stored); err != nil {
		return nil, err
	}
	node, pub, err := joinNode(req)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Get(ctx, api.MustKind(api.KindNode), "", req.Node); err == nil {
		return nil, alreadyJoined(req.Node)
	}
	release, err := s.admitNodeSubnet(ctx, nil, node)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateWith(ctx, node, stored); errors.Is(err, store.ErrAlreadyExists) {
		release()
		return nil, alreadyJoined(req.Node)
	} else if err != nil {
		release()
		return nil, err
	}
	cert, err := s.ca.Issue(pki.Request{PublicKey: pub, Name: pki.NodeName(node.Metadata.Name), Groups: []string{pki.GroupNodes},
		URIs: []*url.URL{pki.NodeURI(node.Metadata.Name, node.Metadata.UID)}, TTL: s.nodeCertTTL})
	if err != nil {
		_ = s.store.Delete(context.WithoutCancel(ctx), api.MustKind(api.KindNode), "", node.Metadata.Name, node.Metadata.Revision)
		release()
		return nil, err
	}
	return &api.Credentials{Certificate: string(cert), CA: string(s.ca.CertPEM)}, nil
}

// decodeJoinRequest reads the body of a join: anyone may send one, so it
// is fuzzed (FuzzJoinRequest).
func decodeJoinRequest(b []byte) (api.JoinRequest, error) {
	var req api.JoinRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return api.JoinRequest{}, fmt.Errorf("join request: %v: %w", err, errBadRequest)
	}
	return req, nil
}

// joinNode is the Node a join request asks for and the key its
// certificate is for.
func joinNode(req api.JoinRequest) (*api.Node, crypto.PublicKey, error) {
	pub, err := pki.ParsePublicKey([]byte(req.PublicKey))
	if err != nil {
		return nil, nil, fmt.Errorf("join request: publicKey: %v: %w", err, errBadRequest)
	}
	node := &api.Node{
		TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
		Metadata: api.ObjectMeta{Name: req.Node, Labels: req.Labels},
		Spec:     api.NodeSpec{Subnet: req.Subnet},
		Status:   api.NodeStatus{Accepts: req.Accepts},
	}
	if err := api.Validate(node); err != nil {
		return nil, nil, err
	}
	return node, pub, nil
}

func alreadyJoined(node string) error {
	return fmt.Errorf("node %q has already joined; to join this machine under that name, remove the old one first (shoal node remove %s): %w", node, node, store.ErrAlreadyExists)
}

// userCertTTL is how long a user certificate lasts.
const userCertTTL = 365 * 24 * time.Hour

// readPublicKey reads a CertificateRequest's public key.
func readPublicKey(r *http.Request) (crypto.PublicKey, error) {
	b, err := readBody(r, maxJoinBytes)
	if err != nil {
		return nil, err
	}
	var req api.CertificateRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("certificate request: %v: %w", err, errBadRequest)
	}
	pub, err := pki.ParsePublicKey([]byte(req.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("certificate request: publicKey: %v: %w", err, errBadRequest)
	}
	return pub, nil
}

// renewCertificate signs a new certificate for a node that still holds a
// valid one (the guard checked it), for the key it sends.
func (s *Server) renewCertificate(w http.ResponseWriter, r *http.Request, t target) {
	if s.ca == nil {
		writeError(w, fmt.Errorf("this server has no CA: %w", errBadRequest))
		return
	}
	pub, err := readPublicKey(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.store.Get(r.Context(), t.kind, "", t.name)
	if err != nil {
		writeError(w, err)
		return
	}
	cert, err := s.ca.Issue(pki.Request{PublicKey: pub, Name: pki.NodeName(t.name), Groups: []string{pki.GroupNodes},
		URIs: []*url.URL{pki.NodeURI(t.name, obj.GetMeta().UID)}, TTL: s.nodeCertTTL})
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("node certificate renewed", "node", t.name)
	writeJSON(w, http.StatusOK, &api.Credentials{Certificate: string(cert), CA: string(s.ca.CertPEM)})
}
