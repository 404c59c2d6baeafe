package containerd

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/distribution/reference"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// EnsureImage pulls and unpacks image unless it is already unpacked in the
// driver's namespace. Pulls of one reference are serialized.
func (d *Driver) EnsureImage(ctx context.Context, image string) error {
	ctx = d.ctx(ctx)
	ref, err := normalizeRef(image)
	if err != nil {
		return err
	}
	if d.images.get(ref) != nil {
		return nil
	}
	defer d.locks.lock("image:" + ref)()

	if img, err := d.client.GetImage(ctx, ref); err == nil {
		if err := checkPinned(ref, img.Target().Digest.String()); err != nil {
			return err
		}
		ok, err := img.IsUnpacked(ctx, snapshotter)
		if err == nil && ok {
			d.images.put(ref, img)
			return nil
		}
		// Content present but not unpacked (e.g. an interrupted pull):
		// pulling again fetches only what is missing, then unpacks.
	} else if !isNotFound(err) {
		return fmt.Errorf("image %s: %w", ref, err)
	}

	resolver, err := d.resolver()
	if err != nil {
		return err
	}
	// A reference with a digest is pulled by it: containerd fetches the
	// manifest by digest and checks every blob against the digest that
	// names it, and checkPinned checks what it recorded.
	img, err := d.client.Pull(ctx, ref,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(resolver))
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%w: %s", runtime.ErrImageNotFound, ref)
		}
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return checkPinned(ref, img.Target().Digest.String())
}

// checkPinned refuses an image whose manifest is not the one a pinned
// reference names (got is the manifest digest of what was pulled or
// found); a reference by tag pins nothing.
func checkPinned(ref, got string) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	if d, ok := named.(reference.Digested); ok && d.Digest().String() != got {
		return fmt.Errorf("image %s: the manifest pulled is %s, not the digest the instance names; refusing to run it", ref, got)
	}
	return nil
}

// image returns the local image for ref, pulling it if needed.
func (d *Driver) image(ctx context.Context, ref string) (containerd.Image, error) {
	if img := d.images.get(ref); img != nil {
		return img, nil
	}
	img, err := d.client.GetImage(ctx, ref)
	if err == nil {
		if err := checkPinned(ref, img.Target().Digest.String()); err != nil {
			return nil, err
		}
		if ok, err := img.IsUnpacked(ctx, snapshotter); err == nil && ok {
			d.images.put(ref, img)
			return img, nil
		}
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if err := d.EnsureImage(ctx, ref); err != nil {
		return nil, err
	}
	return d.client.GetImage(ctx, ref)
}

// normalizeRef turns "busybox" into "docker.io/library/busybox:latest", the
// name containerd stores, so that lookups and pulls agree. A reference
// with a digest keeps only the digest ("shoal.local/hello:v1@sha256:…"
// becomes "shoal.local/hello@sha256:…"): it is pulled by digest, whatever
// the tag points at now.
func normalizeRef(image string) (string, error) {
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", image, err)
	}
	return named.String(), nil
}

// resolver resolves references through the default Docker registry hosts
// (HTTPS), except for the hosts in Config.Registries, which go to their
// configured base URL (plain HTTP when the URL says so).
func (d *Driver) resolver() (remotes.Resolver, error) {
	parse := func(host, base string) (*url.URL, error) {
		u, err := url.Parse(base)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("registry %s: base URL %q: want http(s)://host[:port][/path]", host, base)
		}
		return u, nil
	}
	overrides := map[string][]*url.URL{}
	for host, base := range d.cfg.Registries {
		u, err := parse(host, base)
		if err != nil {
			return nil, err
		}
		overrides[host] = []*url.URL{u}
		if d.cfg.RegistryMirrors == nil {
			continue
		}
		if mirrors := d.cfg.RegistryMirrors(host); len(mirrors) > 0 {
			overrides[host] = nil
			for _, m := range mirrors {
				u, err := parse(host, m)
				if err != nil {
					return nil, err
				}
				overrides[host] = append(overrides[host], u)
			}
		}
	}
	defaults := docker.ConfigureDefaultRegistries(docker.WithAuthorizer(docker.NewDockerAuthorizer()))
	hosts := func(host string) ([]docker.RegistryHost, error) {
		rh, err := defaults(host)
		if err != nil {
			return nil, err
		}
		us, ok := overrides[host]
		if !ok || len(rh) == 0 {
			return rh, nil
		}
		var client *http.Client
		if cfg := d.cfg.RegistryTLS[host]; cfg != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = cfg
			client = &http.Client{Transport: tr}
		}
		// One host per base URL, in order: a pull goes on to the next
		// when one cannot be reached.
		out := make([]docker.RegistryHost, 0, len(us))
		for _, u := range us {
			h := rh[0]
			h.Host, h.Scheme = u.Host, u.Scheme
			h.Path = path.Join("/", strings.TrimSuffix(u.Path, "/"), "v2")
			h.Capabilities = docker.HostCapabilityPull | docker.HostCapabilityResolve
			if client != nil {
				h.Client = client
			}
			out = append(out, h)
		}
		return out, nil
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), nil
}

// imageCache remembers, for a short while, images known to be unpacked:
// twenty instances of one image starting at once would otherwise each ask
// containerd, one at a time, whether it is there. An image removed behind
// the driver's back is noticed when the entry expires.
type imageCache struct {
	mu sync.Mutex
	m  map[string]cachedImage
}

type cachedImage struct {
	img containerd.Image
	at  time.Time
}

const imageCacheTTL = 30 * time.Second

func (c *imageCache) get(ref string) containerd.Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[ref]
	if !ok || time.Since(e.at) > imageCacheTTL {
		return nil
	}
	return e.img
}

func (c *imageCache) put(ref string, img containerd.Image) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedImage{}
	}
	c.m[ref] = cachedImage{img, time.Now()}
}
