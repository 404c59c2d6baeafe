package server

import (
	"fmt"
	"net/http"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store"
)

// MaxApplyDocuments bounds the objects in one apply, which become one
// store transaction; the embedded etcd accepts at most 2048 operations in one.
const MaxApplyDocuments = 1000

// apply creates or updates every document of a YAML or JSON body in one
// store transaction. Any invalid document rejects the whole body. With
// ?dryRun=1 it checks everything the same way, says what would change,
// and stores nothing.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	dryRun := r.URL.Query().Get("dryRun")
	if dryRun != "" && dryRun != "1" && dryRun != "true" {
		writeError(w, fmt.Errorf("dryRun=%q: use dryRun=1: %w", dryRun, errBadRequest))
		return
	}
	body, err := readBody(r, MaxApplyBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	objs, err := api.Decode(body)
	if err == nil {
		err = checkApplicable(objs)
	}
	wr := write{objs: objs, manifest: true, guards: new([]store.Guard)}
	if err == nil {
		err = s.admitWrite(r.Context(), wr)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	var res []store.ApplyResult
	if dryRun != "" {
		res, err = s.store.DryRunApply(r.Context(), objs)
	} else {
		err = s.writeGuarded(r.Context(), wr, func(st *store.Store) (err error) {
			res, err = st.Apply(r.Context(), objs)
			return err
		})
	}
	if err != nil {
		writeError(w, err)
		return
	}
	out := api.ApplyResponse{Results: make([]api.ApplyResult, len(res)), DryRun: dryRun != ""}
	for i, rr := range res {
		m := rr.Object.GetMeta()
		out.Results[i] = api.ApplyResult{Kind: rr.Object.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name, Action: rr.Action, Revision: m.Revision}
		if out.DryRun && rr.Action == api.ApplyConfigured {
			out.Results[i].Diff = api.Diff(redacted(rr.Previous), redacted(rr.Object))
		}
	}
	if !out.DryRun {
		s.log.Info("applied", "objects", len(res))
	}
	writeJSON(w, http.StatusOK, out)
}

// checkApplicable rejects what apply cannot write: too many documents for
// one transaction, kinds only shoal writes, and one object defined twice.
// Documents are numbered from 1, as api.Decode numbers them.
func checkApplicable(objs []api.Object) error {
	if len(objs) > MaxApplyDocuments {
		return fmt.Errorf("the manifest has %d documents; apply at most %d at a time: %w", len(objs), MaxApplyDocuments, errTooLarge)
	}
	type key struct {
		kind     api.Kind
		ns, name string
	}
	seen := make(map[key]int, len(objs))
	for i, o := range objs {
		kind, m := o.GetTypeMeta().Kind, o.GetMeta()
		if kind == api.KindInstance || kind == api.KindEvent {
			return &api.InvalidError{Document: i + 1, Kind: kind, Name: m.Name,
				Errors: []api.FieldError{{Path: "kind", Message: "is managed by shoal and cannot be applied; apply an App instead"}}}
		}
		k := key{kind, m.Namespace, m.Name}
		if j, dup := seen[k]; dup {
			return &api.InvalidError{Document: i + 1, Kind: kind, Name: m.Name,
				Errors: []api.FieldError{{Path: "metadata.name", Message: fmt.Sprintf("document %d already defines this object", j+1)}}}
		}
		seen[k] = i
	}
	return nil
}
