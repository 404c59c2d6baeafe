package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/shoal-dev/shoal/internal/api"
)

// OwnerPolicy is what a node's owner accepts on their machine, whatever
// the control plane says: the agent checks it before it pulls or starts
// anything of an instance.
type OwnerPolicy struct {
	// RequireSignedBy admits only templates signed by one of these keys
	// ("ed25519:BASE64").
	RequireSignedBy []string
	// AllowNamespaces and AllowRegistries, when set, are the only
	// namespaces and image registries ("docker.io", "shoal.local") the
	// node runs.
	AllowNamespaces []string
	AllowRegistries []string
	// AllowHostNamespaces lets instances share the node's PID and IPC
	// namespaces; AllowHostPaths are the node paths (and below) they may
	// mount. Neither is allowed by default.
	AllowHostNamespaces bool
	AllowHostPaths      []string
}

// Accepts is the policy as the Node declares it, for the scheduler.
func (p OwnerPolicy) Accepts() api.NodeAccepts {
	return api.NodeAccepts{Namespaces: p.AllowNamespaces, Registries: p.AllowRegistries, SignedBy: p.RequireSignedBy,
		HostNamespaces: p.AllowHostNamespaces, HostPaths: p.AllowHostPaths}
}

// admit says whether the node may run the instance: the owner's policy,
// the signature of the exact template it is about to run (a template
// changed after it was signed is refused even if the control plane sent
// it), and the instance namespace's signing policy.
func (a *Agent) admit(ctx context.Context, in *api.Instance) error {
	p := a.cfg.Owner
	t := &in.Spec.Template
	if len(p.AllowNamespaces) > 0 && !slices.Contains(p.AllowNamespaces, in.Metadata.Namespace) {
		return fmt.Errorf("node %s does not run namespace %q (its owner allows %v)", a.cfg.NodeName, in.Metadata.Namespace, p.AllowNamespaces)
	}
	if len(p.AllowRegistries) > 0 {
		named, err := reference.ParseNormalizedNamed(t.Image)
		if err != nil {
			return fmt.Errorf("image %q: %w", t.Image, err)
		}
		if reg := reference.Domain(named); !slices.Contains(p.AllowRegistries, reg) {
			return fmt.Errorf("node %s does not pull from %s (its owner allows %v)", a.cfg.NodeName, reg, p.AllowRegistries)
		}
	}
	if hn := t.HostNamespaces(); len(hn) > 0 && !p.AllowHostNamespaces {
		return fmt.Errorf("node %s does not share its namespaces (%s; its owner allows that with --allow-host-namespaces)", a.cfg.NodeName, strings.Join(hn, ", "))
	}
	for _, v := range t.Volumes {
		if !api.HostPathAllowed(v.HostPath, p.AllowHostPaths) {
			return fmt.Errorf("node %s does not mount %s into containers (its owner allows %s)", a.cfg.NodeName, v.HostPath, describePaths(p.AllowHostPaths))
		}
	}
	if err := api.VerifySignature(t, in.Metadata.Namespace, p.RequireSignedBy); err != nil {
		return fmt.Errorf("refused by node %s: %w", a.cfg.NodeName, err)
	}
	if keys := a.namespaceKeys(ctx, in.Metadata.Namespace); len(keys) > 0 {
		if err := api.VerifySignature(t, in.Metadata.Namespace, keys); err != nil {
			return fmt.Errorf("refused by node %s: %w (namespace %q)", a.cfg.NodeName, err, in.Metadata.Namespace)
		}
	}
	return nil
}

// describePaths says which host paths an owner allows, for messages.
func describePaths(paths []string) string {
	if len(paths) == 0 {
		return "none; --allow-host-paths"
	}
	return strings.Join(paths, ", ")
}

// nsPolicies caches namespaces' signing keys for a few seconds: twenty
// instances of one namespace starting at once ask once.
type nsPolicies struct {
	mu sync.Mutex
	m  map[string]nsPolicy
}

type nsPolicy struct {
	keys []string
	at   time.Time
}

const nsPolicyTTL = 5 * time.Second

// namespaceKeys returns the keys the namespace requires, from the server.
// When the server cannot say, only the owner's policy and the signature
// itself are checked.
func (a *Agent) namespaceKeys(ctx context.Context, ns string) []string {
	c := &a.nsPolicies
	c.mu.Lock()
	if p, ok := c.m[ns]; ok && time.Since(p.at) < nsPolicyTTL {
		c.mu.Unlock()
		return p.keys
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	obj, err := a.cfg.Client.Get(ctx, api.MustKind(api.KindNamespace), "", ns)
	if err != nil {
		a.log.Debug("namespace policy unknown", "namespace", ns, "err", err)
		return nil
	}
	keys := obj.(*api.Namespace).Spec.Policy.RequireSignedBy
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]nsPolicy{}
	}
	c.m[ns] = nsPolicy{keys: keys, at: time.Now()}
	c.mu.Unlock()
	return keys
}

// secrets fetches, from the server, the Secrets the instance uses (only a
// node running such an instance may read them). Their values go to the
// runtime only: never to a log, an event or a status message.
func (a *Agent) secrets(ctx context.Context, in *api.Instance) (map[string]map[string][]byte, error) {
	names := in.Spec.Template.SecretNames()
	if len(names) == 0 {
		return nil, nil
	}
	out := make(map[string]map[string][]byte, len(names))
	for _, name := range names {
		obj, err := a.cfg.Client.Reveal(ctx, api.MustKind(api.KindSecret), in.Metadata.Namespace, name)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
		data := obj.(*api.Secret).Spec.Data
		m := make(map[string][]byte, len(data))
		for k, v := range data {
			m[k] = []byte(v)
		}
		out[name] = m
	}
	return out, nil
}
