package server

import (
	"fmt"
	"net/http"
	"net/url"
)

// instanceLog streams an instance's log from the agent of the node that
// runs it (?follow=1&tail=N&previous=1 are passed through).
func (s *Server) instanceLog(w http.ResponseWriter, r *http.Request, t target) {
	ctx := r.Context()
	node, err := s.nodeOf(r, t)
	if err != nil {
		writeError(w, err)
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
