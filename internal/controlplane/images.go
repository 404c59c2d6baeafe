package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/server"
	"github.com/shoal-dev/shoal/internal/store"
)

// imageTagsPrefix is where the cluster's image tags live in the store
// ("repo:tag" -> manifest digest).
const imageTagsPrefix = "/shoal-images/tags/"

// imageCluster lets this server's image store share tags with the other
// servers and copy from their stores (registry.Cluster).
type imageCluster struct {
	st   *store.Store
	self string // this server's name
	tr   *http.Transport
}

func newImageCluster(st *store.Store, self string, tlsCfg *tls.Config) *imageCluster {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &imageCluster{st: st, self: self, tr: tr}
}

func (c *imageCluster) Tag(ctx context.Context, repo, tag string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.st.Client().Get(ctx, imageTagsPrefix+repo+":"+tag)
	if err != nil || len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func (c *imageCluster) SetTags(ctx context.Context, tags map[string]string) error {
	ops := make([]clientv3.Op, 0, len(tags))
	for t, d := range tags {
		ops = append(ops, clientv3.OpPut(imageTagsPrefix+t, d))
	}
	_, err := c.st.Client().Txn(ctx).Then(ops...).Commit()
	return err
}

func (c *imageCluster) Peers(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.st.Client().Get(ctx, server.RegistrationPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil
	}
	var hosts []string
	for _, kv := range resp.Kvs {
		var reg server.Registration
		if json.Unmarshal(kv.Value, &reg) != nil || reg.Name == c.self {
			continue
		}
		if u, err := url.Parse(reg.URL); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}

func (c *imageCluster) Transport() http.RoundTripper { return c.tr }
