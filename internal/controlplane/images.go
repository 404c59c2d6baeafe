package controlplane

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/registry"
	"github.com/shoal-dev/shoal/internal/store"
)

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
	digest, ok, err := c.st.ImageTag(ctx, repo, tag)
	return digest, ok && err == nil
}

func (c *imageCluster) SetTags(ctx context.Context, tags map[string]string) error {
	return c.st.SetImageTags(ctx, tags)
}

func (c *imageCluster) Peers(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	regs, err := c.st.Registrations(ctx)
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
	ensure := func(ref, digest string) bool {
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
		wctx, cancel := context.WithTimeout(ctx, replicateEvery)
		err := c.st.FollowImageTags(wctx, func(ref, digest string, pushed bool) {
			if !pushed {
				ensure(ref, digest)
				return
			}
			// The pushing server is the one that has it; a moment after
			// the tag, it serves it.
			for try := 0; try < 5 && !ensure(ref, digest) && wctx.Err() == nil; try++ {
				time.Sleep(time.Second)
			}
		})
		cancel()
		if err == nil || ctx.Err() != nil {
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
