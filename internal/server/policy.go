package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// errForbidden marks a request the caller may not make: an App its
// namespace's policy does not allow (and, with access control, a verb the
// caller's role lacks).
var errForbidden = errors.New("forbidden")

// checkPolicy refuses an App that asks for more than its namespace's
// policy allows: a privileged container, a capability beyond the
// defaults, the node's namespaces or paths of the node, or a missing or
// foreign signature. The policy is the namespace's in objs when it is declared
// there, else the stored one. Documents are numbered from 1 when objs are
// a manifest's.
func (s *Server) checkPolicy(ctx context.Context, objs []api.Object, manifest bool) error {
	policies := map[string]api.NamespacePolicy{}
	for _, o := range objs {
		if ns, ok := o.(*api.Namespace); ok {
			policies[ns.Metadata.Name] = ns.Spec.Policy
		}
	}
	for i, o := range objs {
		tmpl := templateOf(o)
		if tmpl == nil {
			continue
		}
		meta := o.GetMeta()
		ns := meta.Namespace
		pol, ok := policies[ns]
		if !ok {
			obj, err := s.store.Get(ctx, api.MustKind(api.KindNamespace), "", ns)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				pol = obj.(*api.Namespace).Spec.Policy
			}
			policies[ns] = pol
		}
		where := fmt.Sprintf("%s %q", o.GetTypeMeta().Kind, meta.Name)
		if manifest {
			where = fmt.Sprintf("document %d (%s)", i+1, where)
		}
		if what := tmpl.SecurityContext.NeedsPrivilege(); what != "" && !pol.AllowPrivileged {
			return fmt.Errorf("%s: spec.%s: namespace %q does not allow privileged containers or added capabilities (set spec.policy.allowPrivileged on the Namespace): %w", where, what, ns, errForbidden)
		}
		if hn := tmpl.HostNamespaces(); len(hn) > 0 && !pol.AllowHostNamespaces {
			return fmt.Errorf("%s: spec.%s: namespace %q does not allow host namespaces (set spec.policy.allowHostNamespaces on the Namespace): %w", where, hn[0], ns, errForbidden)
		}
		for i, vol := range tmpl.Volumes {
			if !api.HostPathAllowed(vol.HostPath, pol.AllowHostPaths) {
				allows := "none"
				if len(pol.AllowHostPaths) > 0 {
					allows = strings.Join(pol.AllowHostPaths, ", ")
				}
				return fmt.Errorf("%s: spec.volumes[%d].hostPath: namespace %q does not allow mounting %s from the node (its policy allows %s; set spec.policy.allowHostPaths on the Namespace): %w", where, i, ns, vol.HostPath, allows, errForbidden)
			}
		}
		if err := api.VerifySignature(tmpl, ns, pol.RequireSignedBy); err != nil {
			field := "spec.signature"
			if errors.Is(err, api.ErrUnpinnedImage) {
				field = "spec.image"
			}
			return fmt.Errorf("%s: %s: %v (namespace %q): %w", where, field, err, ns, errForbidden)
		}
	}
	return nil
}
