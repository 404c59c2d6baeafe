package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// A cluster's servers are the members of its etcd cluster (embedded
// etcd: every server runs one). A server checks in while it runs
// (store.Register), so the others know where its API is and that it
// lives; the controllers' leader is the holder of their election.

// maxServerJoinBytes bounds a server join request.
const maxServerJoinBytes = 16 << 10

// joinServer admits a server holding a server token: it adds the server's
// etcd member as a learner (a learner does not count for quorum, so a
// join that never finishes cannot stall the cluster) and hands over what
// every server holds: the CA and the keys that seal Secrets. The new
// server promotes itself once its member has caught up.
func (s *Server) joinServer(w http.ResponseWriter, r *http.Request) {
	if s.ca == nil || s.secretKeys == nil {
		writeError(w, fmt.Errorf("this server has no CA: %w", errBadRequest))
		return
	}
	b, err := readBody(r, maxServerJoinBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	var req api.ServerJoinRequest
	if err := json.Unmarshal(b, &req); err != nil {
		writeError(w, fmt.Errorf("server join request: %v: %w", err, errBadRequest))
		return
	}
	resp, err := s.admitServer(r.Context(), req)
	if err != nil {
		s.log.Info("server join refused", "server", req.Name, "from", r.RemoteAddr, "err", err)
		writeError(w, err)
		return
	}
	s.log.Info("server joined as an etcd learner", "server", req.Name, "peer", req.PeerURL, "from", r.RemoteAddr)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) admitServer(ctx context.Context, req api.ServerJoinRequest) (*api.ServerJoinResponse, error) {
	for attempt := 0; ; attempt++ {
		resp, err := s.admitServerOnce(ctx, req)
		// Another join spent a use of the token meanwhile: read it again.
		if !errors.Is(err, store.ErrConflict) || attempt >= 20 {
			return resp, err
		}
	}
}

// admitServerOnce checks the request, spends one use of the token (a
// server token hands over the CA key: one server per use), then adds the
// member; a member that cannot be added gives the use back.
func (s *Server) admitServerOnce(ctx context.Context, req api.ServerJoinRequest) (*api.ServerJoinResponse, error) {
	tok, err := s.checkToken(ctx, req.Token, "join token")
	if err != nil {
		return nil, err
	}
	if tok.Spec.Role != api.TokenRoleServer {
		return nil, fmt.Errorf("join token %s is for role %s; a server joins with a server token (shoal token create --role server): %w", tok.Metadata.Name, tok.Spec.Role, errForbidden)
	}
	if err := spendJoin(tok); err != nil {
		return nil, err
	}
	if !validServerName(req.Name) {
		return nil, fmt.Errorf("server join request: name %q: use lowercase letters, digits and '-', at most 63: %w", req.Name, errBadRequest)
	}
	keyPEM, err := s.ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	resp := &api.ServerJoinResponse{CA: string(s.ca.CertPEM), CAKey: string(keyPEM), SecretKeys: string(s.secretKeys.Export())}
	if req.PeerURL == "" {
		if !s.externalEtcd {
			// Else a token would hand over the CA key to a holder that
			// never shows up among the servers.
			return nil, fmt.Errorf("server join request: peerURL: required: this cluster's servers run etcd embedded, and a joining server brings a member (its --advertise-address): %w", errBadRequest)
		}
		// A server of a cluster on an external etcd: it shares the store
		// already, and needs only what servers hold.
		if err := s.store.Update(ctx, tok); err != nil {
			return nil, err
		}
		return resp, nil
	}
	if u, err := url.Parse(req.PeerURL); err != nil || u.Scheme != "https" || u.Port() == "" || u.Path != "" {
		return nil, fmt.Errorf("server join request: peerURL %q: want https://ADDRESS:PORT: %w", req.PeerURL, errBadRequest)
	}
	list, err := s.store.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range list {
		switch {
		case m.Name == req.Name:
			return nil, fmt.Errorf("a server named %q is already a member; remove it first (shoal server remove %s) or pick another --name: %w", req.Name, req.Name, store.ErrAlreadyExists)
		case m.Name == "" && m.Learner:
			// A join that never started its member (etcd takes one learner
			// at a time): servers join one after the other, so it is an
			// abandoned one. Replace it.
			if err := s.store.RemoveMember(ctx, m.ID); err != nil {
				return nil, fmt.Errorf("remove the unstarted member at %v: %w", m.PeerURLs, err)
			}
			s.log.Warn("removed an etcd learner that never started", "peer", m.PeerURLs)
		case slices.Contains(m.PeerURLs, req.PeerURL):
			return nil, fmt.Errorf("server %q already has peer URL %s: %w", m.Name, req.PeerURL, store.ErrAlreadyExists)
		}
	}
	if err := s.store.Update(ctx, tok); err != nil {
		return nil, err
	}
	refund := func() {
		_, _ = s.store.Mutate(context.WithoutCancel(ctx), api.MustKind(api.KindToken), "", tok.Metadata.Name, func(o api.Object) error {
			t := o.(*api.Token)
			left := t.JoinsLeft() + 1
			t.Spec.UsesLeft = &left
			return nil
		})
	}
	// etcd refuses a new member while another is only just connected
	// ("unhealthy cluster"): servers joining one after the other wait.
	var added store.Member
	var members []store.Member
	for wait := time.Now().Add(30 * time.Second); ; {
		added, members, err = s.store.AddLearner(ctx, req.PeerURL)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnhealthy) || time.Now().After(wait) {
			refund()
			return nil, fmt.Errorf("add %s to etcd: %w", req.Name, err)
		}
		select {
		case <-ctx.Done():
			refund()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	resp.MemberID = strconv.FormatUint(added.ID, 16)
	var initial []string
	for _, m := range members {
		name := m.Name
		if m.ID == added.ID {
			name = req.Name
		} else {
			resp.ClientURLs = append(resp.ClientURLs, m.ClientURLs...)
		}
		if name == "" {
			continue // another member that has not started yet
		}
		for _, p := range m.PeerURLs {
			initial = append(initial, name+"="+p)
		}
	}
	resp.InitialCluster = strings.Join(initial, ",")
	return resp, nil
}

func validServerName(n string) bool {
	if n == "" || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' {
		return false
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// listServers answers GET /api/v1/servers.
func (s *Server) listServers(w http.ResponseWriter, r *http.Request) {
	out, err := s.servers(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) servers(ctx context.Context) (*api.ServerList, error) {
	members, err := s.store.Members(ctx)
	if err != nil {
		return nil, err
	}
	regs, err := s.store.Registrations(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.Registration{}
	for _, reg := range regs {
		byName[reg.Name] = reg
	}
	leader, err := s.store.Leader(ctx, store.ControllersElection)
	if err != nil {
		return nil, err
	}
	// etcd's URLs are for servers only: nodes and users get the API URLs
	// they fail over to, and nothing that leads them to etcd.
	id, _ := ctx.Value(identityKey).(pki.Identity)
	showEtcd := id.In(pki.GroupServers)
	out := &api.ServerList{Items: []api.ServerInfo{}}
	for _, m := range members {
		info := api.ServerInfo{Name: m.Name, Status: "Ready", Leader: m.Name != "" && m.Name == leader}
		if len(m.PeerURLs) > 0 && showEtcd {
			info.PeerURL = m.PeerURLs[0]
		}
		reg, ok := byName[m.Name]
		info.URL, info.Version = reg.URL, reg.Version
		switch {
		case m.Name == "":
			info.Status = "Unstarted"
		case m.Learner:
			info.Status = "Learner"
		case !ok:
			info.Status = "Unreachable"
		}
		out.Items = append(out.Items, info)
	}
	slices.SortFunc(out.Items, func(a, b api.ServerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// removeServer answers DELETE /api/v1/servers/NAME: the member leaves the
// etcd cluster (its server can no longer reach the store) and its
// check-in goes.
func (s *Server) removeServer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	members, err := s.store.Members(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for _, m := range members {
		if m.Name != name {
			continue
		}
		if len(members) == 1 {
			writeError(w, fmt.Errorf("server %q is the cluster's only one: %w", name, errBadRequest))
			return
		}
		if err := s.store.RemoveMember(r.Context(), m.ID); err != nil {
			writeError(w, fmt.Errorf("remove server %q from etcd: %w", name, err))
			return
		}
		_ = s.store.Unregister(r.Context(), name)
		s.log.Info("server removed", "server", name)
		writeJSON(w, http.StatusOK, api.Status{Code: http.StatusOK, Message: fmt.Sprintf("server %s removed", name)})
		return
	}
	writeError(w, fmt.Errorf("no server %q: %w", name, store.ErrNotFound))
}
