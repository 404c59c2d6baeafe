package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
)

// JoinConfig makes a new server one of an existing cluster's: the URL of
// one of its servers and a token from `shoal token create --role server`.
// Only the first start of a data directory joins; later starts are
// members already.
type JoinConfig struct {
	URL, Token string
}

// joinCluster asks the server at j.URL to add this server. It checks the
// cluster by the token's CA fingerprint before the token goes out, then
// installs what the cluster sent (the CA, the keys that seal Secrets) in
// pkiDir; the answer says how this server's etcd member (etcd; nil on an
// external etcd) joins.
func joinCluster(ctx context.Context, j JoinConfig, name string, etcd *store.EmbeddedConfig, pkiDir string, passphrase []byte) (*api.ServerJoinResponse, error) {
	tok, err := pki.ParseToken(j.Token)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(j.URL, "https://") {
		return nil, fmt.Errorf("--join %q: want the https:// URL of a server of the cluster", j.URL)
	}
	ca, err := pki.FetchCA(ctx, j.URL, tok.CAFingerprint)
	if err != nil {
		return nil, err
	}
	peerURL := ""
	if etcd != nil {
		if peerURL, err = etcd.PeerURL(); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var resp api.ServerJoinResponse
	req := api.ServerJoinRequest{Token: j.Token, Name: name, PeerURL: peerURL}
	if err := client.NewTLS(j.URL, pki.ClientTLS(pool, nil)).Do(ctx, http.MethodPost, "/api/v1/servers/join", req, &resp); err != nil {
		return nil, fmt.Errorf("join %s as server %q: %w", j.URL, name, err)
	}
	if got, err := pki.ParseCert([]byte(resp.CA)); err != nil || pki.Fingerprint(got.Raw) != tok.CAFingerprint {
		return nil, fmt.Errorf("join %s: the CA it sent is not the token's", j.URL)
	}
	if _, err := pki.InstallCA(pkiDir, []byte(resp.CA), []byte(resp.CAKey), passphrase); err != nil {
		return nil, err
	}
	if _, err := pki.InstallSecretKeys(filepath.Join(pkiDir, secretKeysFile), []byte(resp.SecretKeys)); err != nil {
		return nil, err
	}
	return &resp, nil
}

// secretKeysFile holds, in DATA_DIR/pki, the keys that seal Secrets.
const secretKeysFile = "secret-keys.json"

// promote makes this server's learner member a voting one, through the
// other members, as soon as it has caught up with the leader.
func promote(ctx context.Context, joined *api.ServerJoinResponse, tlsCfg *tls.Config) error {
	id, err := strconv.ParseUint(joined.MemberID, 16, 64)
	if err != nil {
		return fmt.Errorf("member id %q: %w", joined.MemberID, err)
	}
	st, err := store.Connect(joined.ClientURLs, tlsCfg)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		err := st.PromoteMember(rctx, id)
		rcancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrLearnerBehind) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("promote this server's etcd member: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote this server's etcd member: it did not catch up within 2 minutes: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// defaultName is a server's name when none is given: the host name, as a
// DNS label.
func defaultName() string {
	host, _ := os.Hostname()
	host = strings.ToLower(host)
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	if !validName.MatchString(host) {
		return "shoal"
	}
	return host
}

var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
