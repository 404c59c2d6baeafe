package controlplane

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/internal/registry"
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
	regs, err := server.Registrations(ctx, c.st.Client())
	if err != nil {
		return nil
	}
	var hosts []string
	for _, reg := range regs {
		if u, err := url.Parse(reg.URL); err == nil && u.Host != "" && reg.Name != c.self {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}

func (c *imageCluster) Transport() http.RoundTripper { return c.tr }

// replicate copies into reg every image the cluster's tags point at and
// it lacks, as they are pushed (a watch on the tags) and again every
// replicateEvery (images whose only copy was on a server that was down),
// until ctx ends.
func (c *imageCluster) replicate(ctx context.Context, reg *registry.Registry, log *slog.Logger) {
	cli := c.st.Client()
	ensure := func(key, digest string) bool {
		ref := strings.TrimPrefix(key, imageTagsPrefix)
		i := strings.LastIndexByte(ref, ':')
		if i < 0 {
			return true
		}
		if err := reg.Ensure(ctx, ref[:i], digest); err != nil {
			if ctx.Err() == nil {
				log.Debug("image not replicated yet", "image", ref, "err", err)
			}
			return false
		}
		return true
	}
	for ctx.Err() == nil {
		resp, err := cli.Get(ctx, imageTagsPrefix, clientv3.WithPrefix())
		if err == nil {
			for _, kv := range resp.Kvs {
				ensure(string(kv.Key), string(kv.Value))
			}
			wctx, cancel := context.WithTimeout(ctx, replicateEvery)
			for wr := range cli.Watch(clientv3.WithRequireLeader(wctx), imageTagsPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypePut {
						// The pushing server is the one that has it; a
						// moment after the tag, it serves it.
						for try := 0; try < 5 && !ensure(string(ev.Kv.Key), string(ev.Kv.Value)) && wctx.Err() == nil; try++ {
							time.Sleep(time.Second)
						}
					}
				}
			}
			cancel()
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// replicateEvery is how often a server looks again for images it lacks.
const replicateEvery = 30 * time.Second
