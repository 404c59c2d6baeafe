package server

import (
	"fmt"
	"net/http"
)

func (s *Server) pushImage(w http.ResponseWriter, r *http.Request) {
	if s.images == nil {
		writeError(w, fmt.Errorf("this server keeps no images: %w", errBadRequest))
		return
	}
	streaming(w)
	refs, err := s.images.PushTarball(r.Context(), http.MaxBytesReader(w, r.Body, MaxImageBytes))
	if err != nil {
		writeError(w, fmt.Errorf("push image: %v: %w", err, errBadRequest))
		return
	}
	s.log.Info("image pushed", "refs", refs)
	writeJSON(w, http.StatusOK, map[string][]string{"images": refs})
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	var refs []string
	if s.images != nil {
		refs = s.images.List()
	}
	if refs == nil {
		refs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"images": refs})
}
