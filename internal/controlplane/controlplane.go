package controlplane

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-dev/shoal/internal/api"

	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controller"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/registry"
	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
)

// Config configures one server, nested by concern.
type Config struct {
	// DataDir holds etcd's data (embedded), images, admin.conf and the lock.
	DataDir string
	// Listen is the API's address ("127.0.0.1:7070"; port 0 picks one).
	Listen string
	// Name is this server's name among the cluster's servers (its etcd
	// member's); default the host name.
	Name string
	// AdvertiseAddress is where the other servers reach this one (its
	// etcd peer and client URLs, and its API when Listen is 0.0.0.0);
	// default 127.0.0.1, a cluster on one machine.
	AdvertiseAddress string
	// Join, when its URL is set, makes a new data directory's server one
	// of an existing cluster's.
	Join  JoinConfig
	Etcd  EtcdConfig
	Nodes NodesConfig
	// ServiceCIDR and ClusterCIDR are where Apps' service addresses and
	// nodes' container subnets come from.
	ServiceCIDR, ClusterCIDR string
	// PortRange is the node ports published ports and hostPorts may use
	// (default 30000-32767). The cluster keeps one, in the store: the
	// first server stores its own; with PortRangeSet (--port-range given)
	// this server's replaces the stored one for every server.
	PortRange    api.PortRange
	PortRangeSet bool
	// NodeCertTTL is how long a node certificate lasts (default 30 days;
	// agents renew at two thirds).
	NodeCertTTL time.Duration
	// CAPassphrase, when set, seals the cluster CA's key on disk (or opens
	// it, when it was sealed at creation).
	CAPassphrase []byte
	// AuditMaxBytes is the size at which DATA_DIR/audit.log is rotated
	// (0: never); AuditBackups how many rotated files are kept.
	AuditMaxBytes int64
	AuditBackups  int
	Log           *slog.Logger
	Version       string
}

// EtcdConfig says where state lives.
type EtcdConfig struct {
	// Endpoints of an external etcd cluster; empty runs etcd embedded.
	Endpoints []string
	// CAFile, CertFile and KeyFile (PEM) are how this server reaches an
	// external etcd over TLS: the CA its certificate chains to, and the
	// client certificate it presents. Required for https:// endpoints.
	CAFile, CertFile, KeyFile string
	// QuotaBytes is the most the embedded etcd's database may grow to
	// before it takes only reads and deletes (default
	// store.DefaultQuotaBackendBytes).
	QuotaBytes int64
}

// NodesConfig is how the control plane judges nodes.
type NodesConfig struct {
	// LeaseTimeout marks a silent node not ready; LostAfter replaces its
	// instances elsewhere.
	LeaseTimeout, LostAfter time.Duration
}

// NewConfig returns the defaults: /var/lib/shoal, 127.0.0.1:7070, embedded etcd.
func NewConfig() Config {
	return Config{
		DataDir:       "/var/lib/shoal",
		Listen:        "127.0.0.1:7070",
		Nodes:         NodesConfig{LeaseTimeout: api.DefaultNodeGracePeriod, LostAfter: api.DefaultNodeGracePeriod},
		ServiceCIDR:   controller.DefaultServiceCIDR,
		ClusterCIDR:   controller.DefaultClusterCIDR,
		PortRange:     api.DefaultPortRange,
		AuditMaxBytes: 100 << 20,
		AuditBackups:  5,
		Log:           slog.Default(),
		Version:       "dev",
	}
}

// Validate checks cfg, naming the field at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required"))
	}
	for _, ep := range c.Etcd.Endpoints {
		if strings.HasPrefix(ep, "https://") && (c.Etcd.CAFile == "" || c.Etcd.CertFile == "" || c.Etcd.KeyFile == "") {
			errs = append(errs, fmt.Errorf("etcd endpoint %s is https: give its CA, and a client certificate and key", ep))
			break
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.Name == "" {
		c.Name = defaultName()
	}
	if !validName.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("server name %q: use lowercase letters, digits and '-', at most 63", c.Name))
	}
	if a := c.AdvertiseAddress; a != "" && (net.ParseIP(a) == nil || net.ParseIP(a).IsUnspecified()) {
		errs = append(errs, fmt.Errorf("advertise address %q: want this machine's IP address", a))
	}
	if (c.Join.URL == "") != (c.Join.Token == "") {
		errs = append(errs, errors.New("join: give both the URL of a server of the cluster and a server token"))
	}

	for name, cidr := range map[string]string{"service CIDR": c.ServiceCIDR, "cluster CIDR": c.ClusterCIDR} {
		if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s %q: want an IPv4 CIDR", name, cidr))
		}
	}
	if r := c.PortRange; r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		errs = append(errs, fmt.Errorf("port range %d-%d: want FIRST-LAST, ports from 1 to 65535", r.Min, r.Max))
	}
	if c.NodeCertTTL < 0 || (c.NodeCertTTL > 0 && c.NodeCertTTL < 10*time.Second) {
		errs = append(errs, fmt.Errorf("node certificate TTL %v: want at least 10s", c.NodeCertTTL))
	}
	if c.Nodes.LeaseTimeout <= 0 || c.Nodes.LostAfter < c.Nodes.LeaseTimeout {
		errs = append(errs, fmt.Errorf("node lease timeout %v and lost-after %v: want 0 < lease timeout <= lost-after", c.Nodes.LeaseTimeout, c.Nodes.LostAfter))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return errors.Join(errs...)
}

// Server is a running control plane.
type Server struct {
	cfg   Config
	url   string
	ready chan struct{}
	done  chan struct{}
	err   error
	// Store is the server's store, for tests and benchmarks in process.
	Store *store.Store
	// CA is the cluster's certificate authority.
	CA *pki.CA
	// Admin is the admin credential written to admin.conf.
	Admin client.Config
}

// Start brings the parts up in order and serves until ctx ends. It returns
// once the API listens (Ready is then closed too); Wait reports how it
// ended. On a start-up error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var closers []func()
	undo := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	closers = append(closers, unlock)
	pkiDir, etcdDir := filepath.Join(dataDir, "pki"), filepath.Join(dataDir, "etcd")
	etcdCfg := store.EmbeddedConfig{Dir: etcdDir, Name: cfg.Name, PeerHost: cfg.AdvertiseAddress, Log: log, TLS: etcdTLSFiles(pkiDir), QuotaBackendBytes: cfg.Etcd.QuotaBytes}
	var joined *api.ServerJoinResponse
	switch {
	case cfg.Join.URL != "" && len(cfg.Etcd.Endpoints) == 0 && !store.HasData(etcdDir):
		if joined, err = joinCluster(ctx, cfg.Join, cfg.Name, &etcdCfg, pkiDir, cfg.CAPassphrase); err != nil {
			undo()
			return nil, err
		}
		log.Info("joined the cluster; starting this server's etcd member", "via", cfg.Join.URL)
	case cfg.Join.URL != "" && len(cfg.Etcd.Endpoints) > 0 && !fileExists(filepath.Join(pkiDir, pki.CACertFile)):
		// On an external etcd: the store is shared already; take the CA
		// and the secret keys.
		if _, err = joinCluster(ctx, cfg.Join, cfg.Name, nil, pkiDir, cfg.CAPassphrase); err != nil {
			undo()
			return nil, err
		}
		log.Info("joined the cluster", "via", cfg.Join.URL)
	}
	ca, err := pki.LoadOrCreateSealedCA(pkiDir, cfg.CAPassphrase)
	if err != nil {
		undo()
		return nil, err
	}
	var st *store.Store
	if len(cfg.Etcd.Endpoints) > 0 {
		var tlsCfg *tls.Config
		if e := cfg.Etcd; e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" {
			t := &store.EmbeddedTLS{CAFile: e.CAFile, ClientCertFile: e.CertFile, ClientKeyFile: e.KeyFile}
			if tlsCfg, err = t.ClientConfig(); err != nil {
				undo()
				return nil, fmt.Errorf("etcd TLS (--etcd-cafile, --etcd-certfile, --etcd-keyfile): %w", err)
			}
		}
		ext, err := store.Connect(cfg.Etcd.Endpoints, tlsCfg)
		if err != nil {
			undo()
			return nil, fmt.Errorf("connect to etcd %v: %w", cfg.Etcd.Endpoints, err)
		}
		closers = append(closers, func() { ext.Close() })
		st = ext
	} else {
		etcdTLS := etcdCfg.TLS
		if err := etcdCertificates(ca, etcdTLS, cfg.AdvertiseAddress); err != nil {
			undo()
			return nil, err
		}
		if joined != nil {
			etcdCfg.InitialCluster, etcdCfg.Existing = joined.InitialCluster, true
		}
		e, err := store.StartEmbedded(ctx, etcdCfg)
		if err != nil {
			undo()
			return nil, err
		}
		closers = append(closers, func() { e.Close() })
		if joined != nil {
			tlsCfg, err := etcdTLS.ClientConfig()
			if err == nil {
				err = promote(ctx, joined, tlsCfg)
			}
			if err != nil {
				undo()
				return nil, err
			}
			log.Info("this server's etcd member is a voting member")
		}
		st = e.Store()
	}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = claimStore(ictx, st, ca)
	if err == nil {
		if err = server.EnsureDefaultNamespace(ictx, st); err != nil {
			err = fmt.Errorf("create the default namespace: %w", err)
		}
	}
	if err == nil {
		var ports api.PortRange
		var changed bool
		if ports, changed, err = st.InitPortRange(ictx, cfg.PortRange, cfg.PortRangeSet); err == nil {
			if changed {
				log.Warn("the cluster's publish range changed for every server (--port-range)", "range", ports.String())
			} else {
				log.Info("the cluster's publish range", "range", ports.String())
			}
		}
	}
	cancel()
	if err != nil {
		undo()
		return nil, err
	}
	reg, err := registry.New(filepath.Join(dataDir, "images"), log)
	if err != nil {
		undo()
		return nil, err
	}
	secretKeys, err := pki.LoadOrCreateSecretKeys(filepath.Join(pkiDir, secretKeysFile))
	if err != nil {
		undo()
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		undo()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	keypair, err := serverKeypair(ca, l.Addr().(*net.TCPAddr).IP)
	if err != nil {
		l.Close()
		undo()
		return nil, err
	}
	images := newImageCluster(st, cfg.Name, pki.ClientTLS(ca.Pool(), keypair))
	reg.SetCluster(images)
	url := "https://" + l.Addr().String()
	if tcp := l.Addr().(*net.TCPAddr); tcp.IP.IsUnspecified() {
		url = "https://" + net.JoinHostPort(cmp.Or(cfg.AdvertiseAddress, "127.0.0.1"), strconv.Itoa(tcp.Port))
	}
	admin, err := adminConfig(ctx, st, ca, url, cfg.Name, log)
	if err == nil {
		admin.Servers = otherServers(ctx, st, cfg.Name)
	}
	if err == nil {
		err = client.WriteConfig(filepath.Join(dataDir, "admin.conf"), admin)
	}
	if err != nil {
		l.Close()
		undo()
		return nil, fmt.Errorf("write admin.conf: %w", err)
	}
	audit, err := openAuditFile(filepath.Join(dataDir, "audit.log"), cfg.AuditMaxBytes, cfg.AuditBackups)
	if err != nil {
		l.Close()
		undo()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	closers = append(closers, func() { audit.Close() })
	metrics := prometheus.NewRegistry()
	srv := server.New(server.Config{Store: st, Images: reg, Log: log, Version: cfg.Version, Registry: metrics,
		CA: ca, Keypair: keypair, NodeCertTTL: cfg.NodeCertTTL, SecretKeys: secretKeys, Audit: audit,
		ExternalEtcd: len(cfg.Etcd.Endpoints) > 0,
		ClusterCIDR:  netip.MustParsePrefix(cfg.ClusterCIDR).Masked()})
	s := &Server{cfg: cfg, url: url, ready: make(chan struct{}), done: make(chan struct{}), Store: st, CA: ca, Admin: admin}
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); images.replicate(ctx, reg, log) }()
	go func() {
		defer wg.Done()
		st.Register(ctx, store.Registration{Name: cfg.Name, URL: url, Version: cfg.Version}, log)
	}()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	go func() {
		defer wg.Done()
		_ = controller.Run(ctx, controller.Config{Store: st, Log: log, Metrics: metrics, Identity: cfg.Name,
			LeaseTimeout: cfg.Nodes.LeaseTimeout, LostAfter: cfg.Nodes.LostAfter, ServiceCIDR: cfg.ServiceCIDR, ClusterCIDR: cfg.ClusterCIDR,
			Admit: srv.Admit, MaxTxnOps: maxTxnOps(cfg)})
	}()
	log.Info("shoal server listening", "url", url, "data", dataDir, "config", filepath.Join(dataDir, "admin.conf"))
	close(s.ready)
	go func() {
		defer close(s.done)
		s.err = server.Serve(ctx, l, srv.Handler(), pki.ServerTLS(ca.Pool(), keypair), log)
		parts := make(chan struct{})
		go func() { wg.Wait(); close(parts) }()
		select {
		case <-parts:
		case <-time.After(shutdownGrace):
			// Without a quorum, leaving (resigning, checking out) waits
			// for a leader that is not coming: close the store under them.
			log.Warn("the controllers and check-in did not stop in time (no quorum?); closing the store")
		}
		undo()
		<-parts
	}()
	return s, nil
}

// claimStore records this server's CA as the store's, or checks that it
// is: a server with a CA of its own (one started on a shared external
// etcd without --join) must not serve the cluster's state.
func claimStore(ctx context.Context, st *store.Store, ca *pki.CA) error {
	fp := ca.Fingerprint()
	held, err := st.ClaimClusterCA(ctx, fp)
	if err != nil {
		return fmt.Errorf("the store: %w", err)
	}
	if held != fp {
		return fmt.Errorf("the store belongs to a cluster with another CA (%.12s…; this server's is %.12s…): join that cluster with --join URL --token (a token from `shoal token create --role server`)", held, fp)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// shutdownGrace is how long a stopping server waits for its parts before
// it closes the store under them.
const shutdownGrace = 5 * time.Second

// otherServers are the API URLs of the cluster's other running servers,
// for clients to fail over to.
func otherServers(ctx context.Context, st *store.Store, self string) []string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	regs, err := st.Registrations(ctx)
	if err != nil {
		return nil
	}
	var urls []string
	for _, reg := range regs {
		if reg.Name != self && reg.URL != "" {
			urls = append(urls, reg.URL)
		}
	}
	return urls
}

// serverValidity is how long a server's own certificates (its serving
// certificate, admin.conf's) last; both are issued again at every start.
const serverValidity = 365 * 24 * time.Hour

// serverKeypair issues the server's certificate, for a new key, naming
// every address a client may use to reach it: localhost, the host name and
// every address on the machine (or only listenIP, when it is one).
func serverKeypair(ca *pki.CA, listenIP net.IP) (*pki.Keypair, error) {
	host, _ := os.Hostname()
	dns := []string{"localhost"}
	if host != "" {
		dns = append(dns, host)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if listenIP.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	} else {
		ips = append(ips, listenIP)
	}
	name := "server:" + host
	certPEM, keyPEM, err := ca.IssueWithKey(pki.Request{Name: name, Groups: []string{pki.GroupServers}, DNSNames: dns, IPs: ips, TTL: serverValidity})
	if err != nil {
		return nil, err
	}
	// The chain carries the CA, so a joining node can find it by the
	// fingerprint in its token.
	return pki.NewKeypair(append(certPEM, ca.CertPEM...), keyPEM)
}

// etcdTLSFiles are where the embedded etcd's certificates live in dir.
func etcdTLSFiles(dir string) *store.EmbeddedTLS {
	return &store.EmbeddedTLS{
		CertFile: filepath.Join(dir, "etcd-server.crt"), KeyFile: filepath.Join(dir, "etcd-server.key"),
		ClientCertFile: filepath.Join(dir, "etcd-client.crt"), ClientKeyFile: filepath.Join(dir, "etcd-client.key"),
		CAFile: filepath.Join(dir, pki.EtcdCACertFile),
	}
}

// etcdCertificates issues the embedded etcd's serving certificate (for
// loopback and the advertised address, also its peer certificate) and the
// certificate this server's etcd client presents, into t's files (keys
// 0600), from the etcd CA, which etcd trusts alone: etcd speaks only TLS
// and admits only the cluster's servers, never a node's, a user's or an
// admin's certificate (those come from the cluster CA).
func etcdCertificates(clusterCA *pki.CA, t *store.EmbeddedTLS, advertise string) error {
	ca, err := clusterCA.EtcdCA()
	if err != nil {
		return err
	}
	if err := os.WriteFile(t.CAFile, ca.CertPEM, 0o644); err != nil {
		return err
	}
	host, _ := os.Hostname()
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(advertise); ip != nil {
		ips = append(ips, ip)
	}
	for _, c := range []struct {
		cert, key string
		req       pki.Request
	}{
		{t.CertFile, t.KeyFile, pki.Request{Name: "etcd:" + host, Groups: []string{pki.GroupServers}, DNSNames: []string{"localhost"}, IPs: ips}},
		{t.ClientCertFile, t.ClientKeyFile, pki.Request{Name: "server:" + host, Groups: []string{pki.GroupServers}}},
	} {
		c.req.TTL = serverValidity
		certPEM, keyPEM, err := ca.IssueWithKey(c.req)
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.key, keyPEM, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(c.cert, certPEM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// adminConfig issues an admin credential and returns it as a client
// config. The certificate names this server's admin User (adminUserName,
// cluster-admin, made at the first start), as a user's certificate names
// its User: deleting that User revokes every admin.conf this server
// wrote, and the server's next start makes a new User and admin.conf.
// The certificate is also in GroupAdmins, which agents admit for metrics
// (a scraper); logs and exec on a node go through a server.
func adminConfig(ctx context.Context, st *store.Store, ca *pki.CA, url, server string, log *slog.Logger) (client.Config, error) {
	u, err := ensureAdminUser(ctx, st, adminUserName(server), log)
	if err != nil {
		return client.Config{}, err
	}
	name := u.Metadata.Name
	certPEM, keyPEM, err := ca.IssueWithKey(pki.Request{Name: pki.UserName(name), Groups: []string{pki.GroupUsers, pki.GroupAdmins},
		URIs: []*neturl.URL{pki.UserURI(name, u.Metadata.UID)}, TTL: serverValidity})
	if err != nil {
		return client.Config{}, err
	}
	return client.Config{Server: url, CA: string(ca.CertPEM), Certificate: string(certPEM), Key: string(keyPEM)}, nil
}

// adminUserName is the User that server's admin.conf speaks for.
func adminUserName(server string) string {
	name := "admin-" + server
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// ensureAdminUser returns the User name, made a cluster-admin if it does
// not exist yet. One that exists keeps its roles: a cluster-admin may
// have narrowed them, as for any user.
func ensureAdminUser(ctx context.Context, st *store.Store, name string, log *slog.Logger) (*api.User, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := &api.User{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindUser}, Metadata: api.ObjectMeta{Name: name},
		Spec: api.UserSpec{Roles: []api.RoleBinding{{Role: api.RoleClusterAdmin}}}}
	err := st.Create(ctx, u)
	if err == nil {
		log.Info("made the admin user of this server's admin.conf (shoal user delete "+name+" revokes it)", "user", name)
		return u, nil
	}
	if !errors.Is(err, store.ErrAlreadyExists) {
		return nil, fmt.Errorf("admin user %s: %w", name, err)
	}
	obj, err := st.Get(ctx, api.MustKind(api.KindUser), "", name)
	if err != nil {
		return nil, fmt.Errorf("admin user %s: %w", name, err)
	}
	u = obj.(*api.User)
	if !slices.ContainsFunc(u.Spec.Roles, func(b api.RoleBinding) bool { return b.Role == api.RoleClusterAdmin }) {
		log.Warn("the admin user of admin.conf is not a cluster-admin; admin.conf can do only what its roles allow", "user", name)
	}
	return u, nil
}

// CreateToken stores a new join token for role, valid for ttl and for
// uses joins, and returns it as users copy it.
func (s *Server) CreateToken(ctx context.Context, role api.TokenRole, ttl time.Duration, uses int32, description string) (string, error) {
	tok := pki.NewToken(s.CA.Fingerprint())
	obj := api.NewToken(tok.ID, tok.SecretHash(), role, time.Now().Add(ttl), description)
	obj.Spec.UsesLeft = &uses
	if err := s.Store.Create(ctx, obj); err != nil {
		return "", err
	}
	return tok.String(), nil
}

// ForgetNode removes the Node name, revoking its certificates: for an
// all-in-one server whose own node lost its credentials.
func (s *Server) ForgetNode(ctx context.Context, name string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	err = c.Delete(ctx, api.MustKind(api.KindNode), "", name, client.DeleteOptions{})
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	return err
}

// Client is an admin client of this server.
func (s *Server) Client() (*client.Client, error) { return client.FromConfig(s.Admin) }

// URL is the API's base URL.
func (s *Server) URL() string { return s.url }

// Ready is closed once the API listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Wait blocks until the server has stopped (its context ended) and
// everything it started is closed, and says why it stopped.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// lockDataDir makes sure one server at a time uses a data directory: two
// would fight over the same etcd data.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "shoal.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another shoal server is using %s (see %s); stop it first or pick another --data-dir", dir, path)
	}
	return func() { f.Close() }, nil
}

// maxTxnOps is how many operations one transaction of the store's etcd
// takes: the embedded one's, or (unknown) etcd's default for an external
// one.
func maxTxnOps(cfg Config) int {
	if len(cfg.Etcd.Endpoints) > 0 {
		return 0
	}
	return store.EmbeddedMaxTxnOps
}
