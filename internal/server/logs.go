package server

import (
	"fmt"
	"net/http"
)

// instanceLog streams an instance's log from the agent of the node that
// runs it (?follow=1&tail=N&previous=1 are passed through).
func (s *Server) instanceLog(w http.ResponseWriter, r *http.Request, t target) {
	ctx := r.Context()
	streaming(w)
	node, err := s.nodeOf(r, t)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.agentURL(node, "/logs/"+t.ns+"/"+t.name, r.URL.RawQuery), nil)
	if err != nil {
		writeError(w, err)
		return
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: s.agentTLS(node.Metadata.Name), DisableKeepAlives: true}}
	resp, err := hc.Do(req)
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
