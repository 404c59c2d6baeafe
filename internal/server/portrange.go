package server

import (
	"context"

	"github.com/shoal-dev/shoal/internal/api"
)

// clusterPortRange is the publish range in the store, read at every
// admission so that a change reaches every server at once.
func (s *Server) clusterPortRange(ctx context.Context) (api.PortRange, error) {
	return s.store.PortRange(ctx)
}

// checkPortRange refuses an App or Job whose published ports or hostPorts
// are outside the cluster's publish range.
func (s *Server) checkPortRange(ctx context.Context, objs []api.Object, manifest bool) error {
	var r api.PortRange
	for i, o := range objs {
		t, kind := templateOf(o), o.GetTypeMeta().Kind
		if t == nil {
			continue
		}
		if !bindsNodePorts(t) {
			continue
		}
		if r.IsZero() {
			var err error
			if r, err = s.clusterPortRange(ctx); err != nil {
				return err
			}
		}
		if errs := api.CheckPortRange("spec", t, r, "the cluster's publish range", "set by the cluster admin with --port-range"); len(errs) > 0 {
			doc := 0
			if manifest {
				doc = i + 1
			}
			return &api.InvalidError{Document: doc, Kind: kind, Name: o.GetMeta().Name, Errors: errs}
		}
	}
	return nil
}

func bindsNodePorts(t *api.Template) bool {
	for _, p := range t.Ports {
		if p.Publish != 0 || p.HostPort != 0 {
			return true
		}
	}
	return false
}
