package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// pathRule is one party's allowed host paths, for resolveMounts: who says
// it ("node n1's owner", "namespace \"ops\"'s policy") and the paths.
type pathRule struct {
	who     string
	allowed []string
}

// mounts resolves the instance's volumes on this machine and checks where
// they really lead against the owner's and the namespace's allowed host
// paths: the servers and admit compared strings, and a symbolic link
// inside an allowed tree can lead anywhere.
func (a *Agent) mounts(ctx context.Context, in *api.Instance) ([]runtime.Mount, error) {
	vols := in.Spec.Template.Volumes
	if len(vols) == 0 {
		return nil, nil
	}
	pol, err := a.namespacePolicy(ctx, in.Metadata.Namespace)
	if err != nil {
		return nil, err
	}
	return resolveMounts(vols,
		pathRule{fmt.Sprintf("node %s's owner", a.cfg.NodeName), a.cfg.Owner.AllowHostPaths},
		pathRule{fmt.Sprintf("namespace %q's policy", in.Metadata.Namespace), pol.AllowHostPaths})
}

// resolveMounts turns volumes into the runtime's mounts of their resolved
// paths (every symbolic link followed), refusing any that leads outside
// what one of rules allows. The runtime mounts the resolved path, not the
// one asked for, so a link swapped in after this check is not followed
// from the volume's own path (a component of the resolved path can still
// be swapped before the mount; the driver checks it once more).
func resolveMounts(vols []api.Volume, rules ...pathRule) ([]runtime.Mount, error) {
	out := make([]runtime.Mount, 0, len(vols))
	for i, v := range vols {
		src, err := filepath.EvalSymlinks(v.HostPath)
		if err != nil {
			return nil, fmt.Errorf("volumes[%d] (%s): hostPath %s: %w", i, v.Name, v.HostPath, err)
		}
		for _, r := range rules {
			if !resolvedAllowed(src, r.allowed) {
				return nil, fmt.Errorf("volumes[%d] (%s): hostPath %s leads to %s, outside what %s allows (%s)", i, v.Name, v.HostPath, src, r.who, describeAllowed(r.allowed))
			}
		}
		out = append(out, runtime.Mount{Source: src, Destination: v.MountPath, ReadOnly: v.ReadOnly})
	}
	return out, nil
}

// resolvedAllowed says whether the resolved path is one of allowed or
// below one, each allowed path resolved too: an allowed /var/run that is
// a link to /run allows /run/x (where /var/run/x leads).
func resolvedAllowed(path string, allowed []string) bool {
	for _, a := range allowed {
		if a == "/" {
			return true
		}
		if r, err := filepath.EvalSymlinks(a); err == nil {
			a = r
		} // a path that does not exist holds nothing that does
		if api.HostPathAllowed(path, []string{a}) {
			return true
		}
	}
	return false
}

func describeAllowed(paths []string) string {
	if len(paths) == 0 {
		return "none"
	}
	return strings.Join(paths, ", ")
}
