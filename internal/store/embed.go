package store

import (
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
	// Name is the etcd member name.
	Name string
	Log  *slog.Logger
	// TLS, when set, makes etcd speak TLS only, to clients and peers, and
	// admit only clients with a certificate from CAFile.
	TLS *EmbeddedTLS
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

// Embedded is a running single-member etcd inside this process.
type Embedded struct {
	etcd   *embed.Etcd
	Client *clientv3.Client
	// Endpoint is the client URL other processes may use.
	Endpoint string
}

// ports are chosen once and kept, so a restarted member keeps the peer URL
// recorded in its own membership data.
type ports struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// StartEmbedded starts etcd with its data under cfg.Dir, waits until it
// serves, and returns a connected client.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Name == "" {
		cfg.Name = "shoal"
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w", err)
	}
	p, err := loadPorts(filepath.Join(cfg.Dir, "ports.json"))
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	clientURL := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", p.Client)}
	peerURL := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", p.Peer)}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = filepath.Join(cfg.Dir, "member-data")
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peerURL.String())
	ec.LogLevel = "error"
	ec.MaxTxnOps = 2048
	ec.MaxRequestBytes = 24 << 20
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
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd did not become ready within 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	cli, err := ConnectTLS([]string{clientURL.String()}, clientTLS)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("connect to embedded etcd: %w", err)
	}
	if cfg.Log != nil {
		cfg.Log.Info("embedded etcd ready", "dir", cfg.Dir, "endpoint", clientURL.String())
	}
	return &Embedded{etcd: e, Client: cli, Endpoint: clientURL.String()}, nil
}

// Close stops the client and the etcd server.
func (e *Embedded) Close() {
	e.Client.Close()
	e.etcd.Close()
}

// Connect returns a client for an external etcd cluster.
func Connect(endpoints []string) (*clientv3.Client, error) { return ConnectTLS(endpoints, nil) }

// ConnectTLS returns a client for an etcd cluster that speaks TLS (cfg)
// or, with cfg nil, plain gRPC.
func ConnectTLS(endpoints []string, cfg *tls.Config) (*clientv3.Client, error) {
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
