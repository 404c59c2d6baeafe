package server

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// instanceLog streams an instance's log from the agent of the node that
// runs it (?follow=1&tail=N&previous=1 are passed through).
func (s *Server) instanceLog(w http.ResponseWriter, r *http.Request, t target) {
	ctx := r.Context()
	obj, err := s.store.Get(ctx, t.kind, t.ns, t.name)
	if err != nil {
		writeError(w, err)
		return
	}
	in := obj.(*api.Instance)
	if in.Spec.Node == "" {
		writeError(w, fmt.Errorf("instance %q is not placed on a node yet, so it has no logs: %w", t.name, errBadRequest))
		return
	}
	nobj, err := s.store.Get(ctx, api.MustKind(api.KindNode), "", in.Spec.Node)
	if err != nil {
		writeError(w, err)
		return
	}
	node := nobj.(*api.Node)
	if node.Status.Address == "" {
		writeError(w, fmt.Errorf("node %q has not said where it serves logs: %w", node.Metadata.Name, store.ErrNotFound))
		return
	}
	u := url.URL{Scheme: "http", Host: node.Status.Address, Path: "/logs/" + t.ns + "/" + t.name, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.logs.Do(req)
	if err != nil {
		writeError(w, fmt.Errorf("reach node %q for logs: %w", node.Metadata.Name, err))
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return // io.EOF included: the agent finished the stream
		}
	}
}
