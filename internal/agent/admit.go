package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
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
	// AllowPrivileged lets instances run privileged (every capability,
	// the host's devices, no seccomp filter); AllowCapabilities are the
	// capabilities beyond api.DefaultCapabilities they may add, by
	// canonical name ("CAP_NET_ADMIN"; "ALL" for any). Neither by default.
	AllowPrivileged   bool
	AllowCapabilities []string
	// PortRange is the node ports instances' hostPorts (and the node's
	// proxy's published ports) may use: the cluster's range, or a narrower
	// one (--port-range). The zero range allows none.
	PortRange api.PortRange
}

// Accepts is the policy as the Node declares it, for the scheduler.
func (p OwnerPolicy) Accepts() api.NodeAccepts {
	return api.NodeAccepts{Namespaces: p.AllowNamespaces, Registries: p.AllowRegistries, SignedBy: p.RequireSignedBy,
		HostNamespaces: p.AllowHostNamespaces, HostPaths: p.AllowHostPaths,
		Privileged: p.AllowPrivileged, Capabilities: p.AllowCapabilities, PortRange: p.PortRange.String()}
}

// privilege says what of sc the owner does not allow, and which flag
// would allow it; nil when nothing.
func (p OwnerPolicy) privilege(node string, sc *api.SecurityContext) error {
	if sc == nil || p.AllowPrivileged {
		return nil // privileged allows every capability too
	}
	if sc.Privileged {
		return fmt.Errorf("node %s does not run privileged containers (securityContext.privileged; its owner allows that with --allow-privileged)", node)
	}
	for i, c := range sc.Capabilities.Add {
		name, _ := api.CapabilityName(c)
		if slices.Contains(api.DefaultCapabilities, name) || slices.Contains(p.AllowCapabilities, name) || slices.Contains(p.AllowCapabilities, "ALL") {
			continue
		}
		allows := "none beyond the default set"
		if len(p.AllowCapabilities) > 0 {
			allows = strings.Join(p.AllowCapabilities, ", ")
		}
		flag := "--allow-capabilities " + strings.TrimPrefix(name, "CAP_")
		if name == "ALL" {
			flag = "--allow-capabilities ALL or --allow-privileged"
		}
		return fmt.Errorf("node %s does not grant %s to containers (securityContext.capabilities.add[%d]; its owner allows %s; that takes %s)", node, name, i, allows, flag)
	}
	return nil
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
	if err := p.privilege(a.cfg.NodeName, t.SecurityContext); err != nil {
		return err
	}
	for _, v := range t.Volumes {
		if !api.HostPathAllowed(v.HostPath, p.AllowHostPaths) {
			return fmt.Errorf("node %s does not mount %s into containers (its owner allows %s)", a.cfg.NodeName, v.HostPath, describePaths(p.AllowHostPaths))
		}
	}
	if errs := api.CheckPortRange("spec.template", t, p.PortRange, "node "+a.cfg.NodeName+"'s publish range", "set by its owner with --port-range"); len(errs) > 0 {
		return fmt.Errorf("node %s does not open the port: %w", a.cfg.NodeName, errs[0])
	}
	if err := api.VerifySignature(t, in.Metadata.Namespace, p.RequireSignedBy); err != nil {
		return fmt.Errorf("refused by node %s: %w", a.cfg.NodeName, err)
	}
	// Fail closed: without the namespace's policy the node cannot know
	// whether the namespace requires a signature, so it runs nothing of
	// it until a server answers (the worker retries with back-off).
	pol, err := a.namespacePolicy(ctx, in.Metadata.Namespace)
	if err != nil {
		return err
	}
	if len(pol.RequireSignedBy) > 0 {
		if err := api.VerifySignature(t, in.Metadata.Namespace, pol.RequireSignedBy); err != nil {
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

// nsPolicies caches namespaces' policies for a few seconds: twenty
// instances of one namespace starting at once ask once.
type nsPolicies struct {
	mu sync.Mutex
	m  map[string]nsPolicy
}

type nsPolicy struct {
	policy api.NamespacePolicy
	at     time.Time
}

const nsPolicyTTL = 5 * time.Second

// namespacePolicy returns the namespace's policy, from the servers. A
// namespace that does not exist has the zero policy (as the servers'
// admission has it); when no server answers, it is an error: the caller
// refuses rather than guess.
func (a *Agent) namespacePolicy(ctx context.Context, ns string) (api.NamespacePolicy, error) {
	c := &a.nsPolicies
	c.mu.Lock()
	if p, ok := c.m[ns]; ok && time.Since(p.at) < nsPolicyTTL {
		c.mu.Unlock()
		return p.policy, nil
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var pol api.NamespacePolicy
	obj, err := a.cfg.Client.Get(ctx, api.MustKind(api.KindNamespace), "", ns)
	switch {
	case err == nil:
		pol = obj.(*api.Namespace).Spec.Policy
	case errors.Is(err, client.ErrNotFound):
	default:
		return pol, fmt.Errorf("refused by node %s for now: cannot read the policy of namespace %q from the servers (it says which signatures and host paths the namespace requires; retried): %w", a.cfg.NodeName, ns, err)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]nsPolicy{}
	}
	c.m[ns] = nsPolicy{policy: pol, at: time.Now()}
	c.mu.Unlock()
	return pol, nil
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
