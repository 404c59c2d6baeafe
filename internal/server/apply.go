package server

import (
	"net/http"

	"github.com/shoal-dev/shoal/internal/api"
)

// ApplyResult reports what apply did with one document.
type ApplyResult struct {
	Kind      api.Kind `json:"kind"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name"`
	Action    string   `json:"action"`
	Revision  int64    `json:"revision"`
}

// ApplyResponse is the body of a successful apply.
type ApplyResponse struct {
	Results []ApplyResult `json:"results"`
}

// apply creates or updates every document of a YAML or JSON body in one
// store transaction. Any invalid document rejects the whole body.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r, MaxApplyBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	objs, err := api.Decode(body)
	if err == nil {
		err = s.checkNamespaces(r.Context(), objs)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for _, o := range objs {
		if o.GetTypeMeta().Kind == api.KindInstance || o.GetTypeMeta().Kind == api.KindEvent {
			writeError(w, &api.InvalidError{Kind: o.GetTypeMeta().Kind, Name: o.GetMeta().Name,
				Errors: []api.FieldError{{Path: "kind", Message: "is managed by shoal and cannot be applied; apply an App instead"}}})
			return
		}
	}
	res, err := s.store.Apply(r.Context(), objs)
	if err != nil {
		writeError(w, err)
		return
	}
	out := ApplyResponse{Results: make([]ApplyResult, len(res))}
	for i, rr := range res {
		m := rr.Object.GetMeta()
		out.Results[i] = ApplyResult{Kind: rr.Object.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name, Action: rr.Action, Revision: m.Revision}
	}
	s.log.Info("applied", "objects", len(res))
	writeJSON(w, http.StatusOK, out)
}
