package store

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EmbeddedConfig says where an embedded etcd keeps its data.
type EmbeddedConfig struct {
	// Dir holds the etcd data directory and the ports file.
	Dir string
	// Name is the etcd member name (the server's name).
	Name string
	// PeerHost is the address the member listens on for, and advertises
	// to, the other members (default 127.0.0.1: a cluster of one).
	PeerHost string
	// InitialCluster ("name=https://ip:port,…", this member included) and
	// Existing join this member to a running cluster that has added it
	// (MemberAddAsLearner); only used when the data dir is new.
	InitialCluster string
	Existing       bool
	Log            *slog.Logger
	// TLS, when set, makes etcd speak TLS only, to clients and peers, and
	// admit only clients with a certificate from CAFile.
	TLS *EmbeddedTLS
	// QuotaBackendBytes is the most the database may grow to before etcd
	// raises its NOSPACE alarm (default DefaultQuotaBackendBytes).
	QuotaBackendBytes int64
}

// EmbeddedTLS names the PEM files of an embedded etcd's TLS: its serving
// certificate (also used between peers), the client certificate the
// server's own client presents, and the CA both chain to.
type EmbeddedTLS struct {
	CertFile, KeyFile             string
	ClientCertFile, ClientKeyFile string
	CAFile                        string
}

// ClientConfig is the TLS config of a client of this etcd.
func (t *EmbeddedTLS) ClientConfig() (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: t.ClientCertFile, KeyFile: t.ClientKeyFile, TrustedCAFile: t.CAFile}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.MinVersion = tls.VersionTLS13
	return cfg, nil
}

// Embedded is a running etcd member inside this process.
type Embedded struct {
	etcd *embed.Etcd
	cli  *clientv3.Client
	// Endpoint is the client URL other processes may use.
	Endpoint string
	// PeerURL is where the other members reach this one.
	PeerURL string
	// ID is this member's id.
	ID uint64

	closeOnce sync.Once
}

// HasData says whether dir already holds an embedded etcd's data: a
// server that has started (or joined) once.
func HasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member-data", "member"))
	return err == nil
}

// ports are chosen once and kept, so a restarted member keeps the peer URL
// recorded in its own membership data.
type ports struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// urls are the member's URLs: its own client's (loopback), the client
// URL it advertises, and its peer URL. The ports are picked once and kept
// in Dir.
func (cfg EmbeddedConfig) urls() (client, advertisedClient, peer url.URL, err error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return client, advertisedClient, peer, fmt.Errorf("etcd data dir: %w", err)
	}
	p, err := loadPorts(filepath.Join(cfg.Dir, "ports.json"))
	if err != nil {
		return client, advertisedClient, peer, err
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	host := cmp.Or(cfg.PeerHost, "127.0.0.1")
	// The server's own client uses loopback; other members (a joining
	// server promoting itself) use the advertised address.
	client = url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", p.Client)}
	advertisedClient = url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(p.Client))}
	peer = url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(p.Peer))}
	return client, advertisedClient, peer, nil
}

// PeerURL is where the member of cfg will be reached by the others, before
// it starts: what a joining server asks the cluster to add.
func (cfg EmbeddedConfig) PeerURL() (string, error) {
	_, _, peer, err := cfg.urls()
	return peer.String(), err
}

// EmbeddedMaxTxnOps is how many operations the embedded etcd takes in one
// transaction (etcd's own default is 128).
const EmbeddedMaxTxnOps = 2048

// StartEmbedded starts etcd with its data under cfg.Dir, waits until it
// serves, and returns a connected client.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Name == "" {
		cfg.Name = "shoal"
	}
	clientURL, advertisedClient, peerURL, err := cfg.urls()
	if err != nil {
		return nil, err
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Join(cfg.Dir, "member-data")
	ec.ListenClientUrls = []url.URL{clientURL}
	if advertisedClient != clientURL {
		ec.ListenClientUrls = append(ec.ListenClientUrls, advertisedClient)
	}
	ec.AdvertiseClientUrls = []url.URL{advertisedClient}
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	ec.LogLevel = "error"
	ec.MaxTxnOps = EmbeddedMaxTxnOps
	ec.MaxRequestBytes = 24 << 20
	// Past the quota etcd takes only reads and deletes (Store.Space says
	// so, Store.Reclaim recovers) instead of filling the disk.
	ec.QuotaBackendBytes = cmp.Or(cfg.QuotaBackendBytes, DefaultQuotaBackendBytes)
	// Keep an hour of history so watchers that reconnect can resume.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	var clientTLS *tls.Config
	if t := cfg.TLS; t != nil {
		info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ClientCertAuth: true}
		ec.ClientTLSInfo, ec.PeerTLSInfo = info, info
		ec.TlsMinVersion = "TLS1.3"
		if clientTLS, err = t.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd client TLS: %w", err)
		}
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	// A member is ready once the cluster has a quorum that takes it in: a
	// server started while most of the others are down waits for them.
	for ready := false; !ready; {
		select {
		case <-e.Server.ReadyNotify():
			ready = true
		case <-e.Err():
			e.Close()
			return nil, fmt.Errorf("embedded etcd in %s stopped while starting", cfg.Dir)
		case <-time.After(10 * time.Second):
			if cfg.Log != nil {
				cfg.Log.Warn("embedded etcd is waiting for a quorum of the cluster's servers", "dir", cfg.Dir)
			}
		case <-ctx.Done():
			e.Close()
			return nil, ctx.Err()
		}
	}
	cli, err := dial([]string{clientURL.String()}, clientTLS)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("connect to embedded etcd: %w", err)
	}
	if cfg.Log != nil {
		cfg.Log.Info("embedded etcd ready", "dir", cfg.Dir, "endpoint", clientURL.String())
	}
	em := &Embedded{etcd: e, cli: cli, Endpoint: clientURL.String(), PeerURL: peerURL.String(), ID: uint64(e.Server.MemberID())}
	if !cfg.Existing { // a learner that just joined was added with it
		if err := em.updatePeerURL(ctx); err != nil {
			em.Close()
			return nil, err
		}
	}
	return em, nil
}

// updatePeerURL records this member's peer URL in the cluster when it
// changed since the member was made (a server started again with another
// --advertise-address, or a port that moved).
func (e *Embedded) updatePeerURL(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := e.cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd members: %w", err)
	}
	for _, m := range resp.Members {
		if m.ID == e.ID && !slices.Equal(m.PeerURLs, []string{e.PeerURL}) {
			if _, err := e.cli.MemberUpdate(ctx, m.ID, []string{e.PeerURL}); err != nil {
				return fmt.Errorf("record this member's new peer URL %s: %w", e.PeerURL, err)
			}
		}
	}
	return nil
}

// Close stops the client and the etcd server; closing again does nothing.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.cli.Close()
		e.etcd.Close()
	})
}

// Store is a Store over this member (its own client, which Close closes).
func (e *Embedded) Store() *Store { return newStore(e.cli) }

// Connect returns a Store over an etcd cluster that speaks TLS (cfg) or,
// with cfg nil, plain gRPC (an external etcd; a joining server's view of
// the cluster it joins). Close it when done.
func Connect(endpoints []string, cfg *tls.Config) (*Store, error) {
	cli, err := dial(endpoints, cfg)
	if err != nil {
		return nil, err
	}
	return newStore(cli), nil
}

func dial(endpoints []string, cfg *tls.Config) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         cfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		// An apply may carry many large documents in one transaction.
		MaxCallSendMsgSize: 32 << 20,
		MaxCallRecvMsgSize: 256 << 20,
	})
}

func loadPorts(path string) (ports, error) {
	var p ports
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &p); err != nil {
			return p, fmt.Errorf("read %s: %w", path, err)
		}
		return p, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return p, err
	}
	var err error
	if p.Client, err = freePort(); err != nil {
		return p, err
	}
	if p.Peer, err = freePort(); err != nil {
		return p, err
	}
	b, _ := json.Marshal(p)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return p, err
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for etcd: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
