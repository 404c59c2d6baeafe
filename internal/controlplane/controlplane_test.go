package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controlplane"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*controlplane.Config)
		want   string
	}{
		{"defaults", func(*controlplane.Config) {}, ""},
		{"no data dir", func(c *controlplane.Config) { c.DataDir = "" }, "data dir: required"},
		{"bad listen", func(c *controlplane.Config) { c.Listen = "7070" }, `listen "7070"`},
		{"bad service CIDR", func(c *controlplane.Config) { c.ServiceCIDR = "10.96.0.0" }, `service CIDR "10.96.0.0": want an IPv4 CIDR`},
		{"lost before not ready", func(c *controlplane.Config) { c.Nodes.LostAfter = time.Second }, "want 0 < lease timeout <= lost-after"},
		{"https etcd without certificates", func(c *controlplane.Config) { c.Etcd.Endpoints = []string{"https://10.0.0.1:2379"} }, "etcd endpoint https://10.0.0.1:2379 is https: give its CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := controlplane.NewConfig()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// Start brings a server up on an embedded etcd: it answers, writes
// admin.conf, holds its data dir against a second server, and Wait
// returns once its context ends.
func TestStartAndWait(t *testing.T) {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	<-srv.Ready()
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("URL %s: want https", srv.URL())
	}
	// Plain HTTP gets nothing; TLS without the cluster's CA fails.
	if resp, err := http.Get("http" + strings.TrimPrefix(srv.URL(), "https") + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Fatal("plain HTTP /healthz answered 200")
	}
	if _, err := http.Get(srv.URL() + "/healthz"); err == nil {
		t.Fatal("TLS with the system roots verified the server")
	}
	conf, err := client.ReadConfig(filepath.Join(cfg.DataDir, "admin.conf"))
	if err != nil || conf.Server != srv.URL() {
		t.Fatalf("admin.conf = %+v, %v; want server %s", conf, err, srv.URL())
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "admin.conf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.conf mode: %v %v, want 0600", st, err)
	}
	c, err := client.FromConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("healthz through admin.conf: %v", err)
	}
	if _, _, err := c.List(ctx, api.MustKind(api.KindNamespace), "", client.ListOptions{}); err != nil {
		t.Fatalf("list namespaces as the admin: %v", err)
	}
	// The embedded etcd answers neither plain gRPC nor TLS without a
	// server's client certificate.
	ports, err := os.ReadFile(filepath.Join(cfg.DataDir, "etcd", "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Client int }
	_ = json.Unmarshal(ports, &p)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(conf.CA))
	for name, cl := range map[string]struct {
		url string
		tls *tls.Config
	}{
		"plain":              {fmt.Sprintf("http://127.0.0.1:%d", p.Client), nil},
		"TLS without a cert": {fmt.Sprintf("https://127.0.0.1:%d", p.Client), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}},
	} {
		raw, err := storetest.Connect([]string{cl.url}, cl.tls)
		if err != nil {
			continue
		}
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err = raw.Get(gctx, "/shoal/")
		gcancel()
		raw.Close()
		if err == nil {
			t.Errorf("etcd answered a %s client", name)
		}
	}
	if _, err := controlplane.Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "another shoal server is using") {
		t.Fatalf("second Start on the same data dir: %v", err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the context ended")
	}
}

// A server on an external etcd that speaks only TLS and wants a client
// certificate: with --etcd-cafile/certfile/keyfile it starts and serves.
// etcdCerts writes an etcd CA, a serving certificate for 127.0.0.1 and a
// client certificate into dir, for etcd members a test starts itself.
func etcdCerts(t *testing.T, dir string) (server, client *store.EmbeddedTLS) {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "etcd-ca"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, req pki.Request) (string, string) {
		key, _ := pki.NewKey()
		req.PublicKey, req.TTL = key.Public(), time.Hour
		certPEM, err := ca.Issue(req)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := pki.EncodeKey(key)
		c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := os.WriteFile(c, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	sc, sk := write("etcd", pki.Request{Name: "etcd", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	cc, ck := write("client", pki.Request{Name: "shoal"})
	caFile := filepath.Join(dir, "etcd-ca", pki.CACertFile)
	return &store.EmbeddedTLS{CertFile: sc, KeyFile: sk, ClientCertFile: cc, ClientKeyFile: ck, CAFile: caFile},
		&store.EmbeddedTLS{ClientCertFile: cc, ClientKeyFile: ck, CAFile: caFile}
}

func TestExternalEtcdOverTLS(t *testing.T) {
	dir := t.TempDir()
	serverTLS, clientTLS := etcdCerts(t, dir)
	caFile, cc, ck := clientTLS.CAFile, clientTLS.ClientCertFile, clientTLS.ClientKeyFile
	e, err := store.StartEmbedded(context.Background(), store.EmbeddedConfig{Dir: filepath.Join(dir, "etcd"), TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = filepath.Join(dir, "server"), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	cfg.Etcd = controlplane.EtcdConfig{Endpoints: []string{e.Endpoint}, CAFile: caFile, CertFile: cc, KeyFile: ck}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start on an external TLS etcd: %v", err)
	}
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.List(ctx, api.MustKind(api.KindNamespace), "", client.ListOptions{}); err != nil {
		t.Fatalf("list through the server: %v", err)
	}
	cancel()
	_ = srv.Wait()
}

// TestServersOnAnExternalEtcdCluster: two servers share a three-member
// etcd cluster the test runs; the second joins the first for the CA and
// the secret keys, a third that does not join is refused the store, and
// losing one etcd member changes nothing.
func TestServersOnAnExternalEtcdCluster(t *testing.T) {
	dir := t.TempDir()
	serverTLS, clientTLS := etcdCerts(t, dir)
	cfgs := make([]store.EmbeddedConfig, 3)
	var initial []string
	for i := range cfgs {
		cfgs[i] = store.EmbeddedConfig{Dir: filepath.Join(dir, fmt.Sprintf("etcd-%d", i)), Name: fmt.Sprintf("e%d", i), TLS: serverTLS}
		peer, err := cfgs[i].PeerURL()
		if err != nil {
			t.Fatal(err)
		}
		initial = append(initial, cfgs[i].Name+"="+peer)
	}
	members := make([]*store.Embedded, 3)
	errs := make(chan error, 3)
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		go func() {
			var err error
			members[i], err = store.StartEmbedded(context.Background(), cfgs[i])
			errs <- err
		}()
	}
	for range cfgs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var endpoints []string
	for _, m := range members {
		t.Cleanup(m.Close)
		endpoints = append(endpoints, m.Endpoint)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(name string, join controlplane.JoinConfig) (*controlplane.Server, error) {
		cfg := controlplane.NewConfig()
		cfg.DataDir, cfg.Listen, cfg.Name, cfg.Log = filepath.Join(dir, name), "127.0.0.1:0", name, slog.New(slog.DiscardHandler)
		cfg.Etcd = controlplane.EtcdConfig{Endpoints: endpoints, CAFile: clientTLS.CAFile, CertFile: clientTLS.ClientCertFile, KeyFile: clientTLS.ClientKeyFile}
		cfg.Join = join
		return controlplane.Start(ctx, cfg)
	}
	a, err := start("a", controlplane.JoinConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, api.TokenRoleServer, time.Hour, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := start("b", controlplane.JoinConfig{URL: a.URL(), Token: tok})
	if err != nil {
		t.Fatalf("second server joining on the external etcd: %v", err)
	}
	if a.CA.Fingerprint() != b.CA.Fingerprint() {
		t.Fatal("the joined server has a CA of its own")
	}
	if _, err := start("c", controlplane.JoinConfig{}); err == nil || !strings.Contains(err.Error(), "the store belongs to a cluster with another CA") {
		t.Fatalf("a server with a CA of its own on the same store: %v", err)
	}

	// a's admin talks to b, and b sees what a wrote.
	viaB := a.Admin
	viaB.Server = b.URL()
	cb, err := client.FromConfig(viaB)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := a.Client()
	ns := &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: "shared"}}
	if err := ca.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Get(ctx, api.MustKind(api.KindNamespace), "", "shared"); err != nil {
		t.Fatalf("b reading what a wrote: %v", err)
	}
	// One etcd member of three down: both servers go on.
	members[0].Close()
	ns2 := &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: "after"}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cb.Create(ctx, ns2)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write with one etcd member of three down: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := ca.Get(ctx, api.MustKind(api.KindNamespace), "", "after"); err != nil {
		t.Fatalf("a reading with one etcd member of three down: %v", err)
	}
	cancel()
	_ = a.Wait()
	_ = b.Wait()
}

// The embedded etcd's client and peer ports admit only servers: a node's,
// a user's and the admin's certificates, all from the cluster CA, are
// refused; the server's own etcd certificates are accepted.
func TestEtcdAdmitsOnlyServers(t *testing.T) {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() { cancel(); _ = srv.Wait() }()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "etcd", "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ports struct{ Client, Peer int }
	if err := json.Unmarshal(b, &ports); err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	etcdRoots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, pki.EtcdCACertFile))
	if err != nil || !etcdRoots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read the etcd CA: %v", err)
	}
	fromClusterCA := func(name string, groups []string, uri string) tls.Certificate {
		req := pki.Request{Name: name, Groups: groups, TTL: time.Hour}
		if uri != "" {
			req.URIs = []*url.URL{{Scheme: "shoal", Opaque: uri}}
		}
		certPEM, keyPEM, err := srv.CA.IssueWithKey(req)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin, err := tls.X509KeyPair([]byte(srv.Admin.Certificate), []byte(srv.Admin.Key))
	if err != nil {
		t.Fatal(err)
	}
	fromFiles := func(name string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, name+".crt"), filepath.Join(pkiDir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// kvGet reads a key through the client port presenting cert.
	kvGet := func(cert tls.Certificate) error {
		raw, err := storetest.Connect([]string{fmt.Sprintf("https://127.0.0.1:%d", ports.Client)},
			&tls.Config{RootCAs: etcdRoots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err != nil {
			return err
		}
		defer raw.Close()
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		defer gcancel()
		_, _, err = raw.Get(gctx, "/shoal/")
		return err
	}
	// peerGet asks the peer port for its version presenting cert.
	peerGet := func(cert tls.Certificate) error {
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: etcdRoots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}}
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/version", ports.Peer))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	refused := map[string]tls.Certificate{
		"a node's": fromClusterCA(pki.NodeName("n1"), []string{pki.GroupNodes}, "node/n1/uid"),
		"a user's": fromClusterCA(pki.UserName("u1"), []string{pki.GroupUsers}, "user/u1/uid"),
		"a server's API certificate from the cluster CA": fromClusterCA("server:h", []string{pki.GroupServers}, ""),
		"the admin's": admin,
	}
	for name, cert := range refused {
		if err := kvGet(cert); err == nil {
			t.Errorf("etcd's client port answered %s certificate", name)
		}
		if err := peerGet(cert); err == nil {
			t.Errorf("etcd's peer port answered %s certificate", name)
		}
	}
	if err := kvGet(fromFiles("etcd-client")); err != nil {
		t.Errorf("etcd's client port refused the server's etcd client certificate: %v", err)
	}
	if err := peerGet(fromFiles("etcd-server")); err != nil {
		t.Errorf("etcd's peer port refused the server's etcd certificate: %v", err)
	}
}

// A data dir made before the etcd CA existed (etcd's certificates from the
// cluster CA, no etcd-ca.crt) starts, with its data.
func TestDataDirFromBeforeTheEtcdCAStarts(t *testing.T) {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	start := func() (*controlplane.Server, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := controlplane.Start(ctx, cfg)
		if err != nil {
			cancel()
			t.Fatalf("Start: %v", err)
		}
		return srv, cancel
	}
	srv, stop := start()
	c, _ := srv.Client()
	ns := &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: "kept"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	stop()
	_ = srv.Wait()
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	if err := os.Remove(filepath.Join(pkiDir, pki.EtcdCACertFile)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd-server", "etcd-client"} {
		certPEM, keyPEM, err := srv.CA.IssueWithKey(pki.Request{Name: name, Groups: []string{pki.GroupServers},
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(pkiDir, name+".crt"), certPEM, 0o644)
		_ = os.WriteFile(filepath.Join(pkiDir, name+".key"), keyPEM, 0o600)
	}
	srv, stop = start()
	defer func() { stop(); _ = srv.Wait() }()
	c, _ = srv.Client()
	if _, err := c.Get(context.Background(), api.MustKind(api.KindNamespace), "", "kept"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pkiDir, pki.EtcdCACertFile)); err != nil {
		t.Fatalf("no etcd CA after the restart: %v", err)
	}
}

// admin.conf's certificate names the server's admin User: deleting it
// refuses that admin.conf, and the next start writes one that works.
func TestAdminConfIsRevocable(t *testing.T) {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Name, cfg.Log = t.TempDir(), "127.0.0.1:0", "s1", slog.New(slog.DiscardHandler)
	start := func() (*controlplane.Server, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := controlplane.Start(ctx, cfg)
		if err != nil {
			cancel()
			t.Fatalf("Start: %v", err)
		}
		return srv, cancel
	}
	ctx := context.Background()
	srv, stop := start()
	old, _ := srv.Client()
	oldConf := srv.Admin
	users := api.MustKind(api.KindUser)
	if _, err := old.Get(ctx, users, "", "admin-s1"); err != nil {
		t.Fatalf("the admin user of admin.conf: %v", err)
	}
	if err := old.Delete(ctx, users, "", "admin-s1", client.DeleteOptions{}); err != nil {
		t.Fatalf("delete the admin user: %v", err)
	}
	if _, _, err := old.List(ctx, api.MustKind(api.KindNamespace), "", client.ListOptions{}); err == nil || !strings.Contains(err.Error(), "was revoked") {
		t.Fatalf("the revoked admin.conf: %v, want revoked", err)
	}
	stop()
	_ = srv.Wait()
	srv, stop = start()
	defer func() { stop(); _ = srv.Wait() }()
	conf, err := client.ReadConfig(filepath.Join(cfg.DataDir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := client.FromConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fresh.List(ctx, api.MustKind(api.KindNamespace), "", client.ListOptions{}); err != nil {
		t.Fatalf("the admin.conf of the next start: %v", err)
	}
	// The old admin.conf stays revoked: the new User has another UID.
	oldConf.Server, oldConf.Servers = srv.URL(), nil
	stale, err := client.FromConfig(oldConf)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stale.List(ctx, api.MustKind(api.KindNamespace), "", client.ListOptions{}); err == nil || !strings.Contains(err.Error(), "earlier user of that name") {
		t.Fatalf("the revoked admin.conf after the restart: %v, want refused", err)
	}
}
