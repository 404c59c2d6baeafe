package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// LabelHash is the label carrying the template hash an Instance runs; it
// decides which instances belong to the App's current revision.
const LabelHash = "shoal.hash"

// maxHistory is how many revisions an App remembers for undo.
const maxHistory = 10

// newRevision records a's new template as revision N+1 and says why it was
// made: a template equal to an earlier revision's is a rollback (by the
// controller or by `shoal rollout undo`); anything else is an apply.
func newRevision(a *api.App, now time.Time) (cause string) {
	hash := api.TemplateHash(a)
	cause = "apply"
	for _, h := range a.Status.History {
		if h.Hash == hash {
			cause = fmt.Sprintf("rollback to the template of revision %d", h.Revision)
		}
	}
	var from int64
	if a.Status.Rollout == api.RolloutFailed && a.Status.RollbackTo != 0 {
		cause = fmt.Sprintf("automatic rollback to revision %d after revision %d failed", a.Status.RollbackTo, a.Status.Revision)
		from = a.Status.Revision
	}
	a.Status.Revision++
	a.Status.TemplateHash = hash
	a.Status.Rollout = api.RolloutProgressing
	a.Status.ProgressAt = now
	a.Status.RollbackTo = 0
	a.Status.History = append(a.Status.History, api.RevisionRecord{
		Revision:  a.Status.Revision,
		Hash:      hash,
		Image:     a.Spec.Image,
		CreatedAt: now,
		Template:  a.Spec.Template,
		Placement: a.Spec.Placement,
		Cause:     cause,

		RolledBackFrom: from,
	})
	if n := len(a.Status.History); n > maxHistory {
		a.Status.History = a.Status.History[n-maxHistory:]
	}
	return cause
}

// advanceRollout moves st's rollout state given what the current
// revision's instances do (st.Ready of st.Replicas, old instances still
// live). It returns the revision record to roll back to when the rollout
// has failed and the App allows automatic rollback.
func (c *Apps) advanceRollout(app *api.App, st *api.AppStatus, old int32, now time.Time) *api.RevisionRecord {
	if st.Ready > app.Status.Ready || st.ProgressAt.IsZero() {
		st.ProgressAt = now // progress: one more ready instance
	}
	switch {
	case st.LastGoodRevision == st.Revision && st.Revision > 0:
		// Rolled out once: later crashes or scaling are not a rollout.
		st.Rollout = api.RolloutComplete
		return nil
	case st.Ready >= st.Replicas && old == 0 && st.Placed >= st.Replicas:
		st.Rollout = api.RolloutComplete
		st.LastGoodRevision = st.Revision
		return nil
	case st.Rollout == api.RolloutFailed:
		return nil
	}
	st.Rollout = api.RolloutProgressing
	deadline := time.Duration(app.Spec.Update.ProgressDeadlineSeconds) * time.Second
	if deadline <= 0 || now.Sub(st.ProgressAt) < deadline {
		return nil
	}
	st.Rollout = api.RolloutFailed
	why := st.Message
	if why == "" {
		why = fmt.Sprintf("%d/%d ready", st.Ready, st.Replicas)
	}
	st.Message = fmt.Sprintf("revision %d made no progress for %s: %s", st.Revision, deadline, why)
	if app.Spec.Update.AutoRollback == nil || !*app.Spec.Update.AutoRollback {
		return nil
	}
	for i := len(st.History) - 1; i >= 0; i-- {
		h := st.History[i]
		if h.Revision == st.LastGoodRevision && h.Hash != st.TemplateHash {
			return &h
		}
	}
	return nil
}

// rollBack returns the App's spec to a good revision's template (in ch,
// written with the rest of the reconcile); the next reconcile sees a new
// template and replaces the failed instances the usual way, with the old
// (still serving) instances becoming current again.
func (c *Apps) rollBack(ctx context.Context, ch *appChange, to *api.RevisionRecord, why string) {
	a := ch.app
	failed := a.Status.Revision
	cand := *a
	cand.Spec.Template, cand.Spec.Placement = to.Template, to.Placement
	if refused := c.admit(ctx, &cand); refused != nil {
		// The good revision's template is no longer admitted (the
		// namespace's policy changed): stay failed, and say why (once).
		msg := fmt.Sprintf("%s; automatic rollback to revision %d refused: %v", why, to.Revision, refused)
		if a.Status.Message == msg && a.Status.Rollout == api.RolloutFailed {
			return
		}
		a.Status.Rollout, a.Status.Message = api.RolloutFailed, msg
		ch.dirty = true
		ch.record("Warning", "RollbackRefused", fmt.Sprintf("revision %d failed (%s); rollback to revision %d refused: %v", failed, why, to.Revision, refused))
		return
	}
	a.Spec.Template = to.Template
	a.Spec.Placement = to.Placement
	a.Status.Rollout = api.RolloutFailed
	a.Status.RollbackTo = to.Revision
	a.Status.Message = why
	ch.dirty = true
	ch.record("Warning", "RolledBack", fmt.Sprintf("revision %d failed (%s); rolling back to revision %d", failed, why, to.Revision))
	key := a.Metadata.Namespace + "/" + a.Metadata.Name
	ch.after = append(ch.after, func() {
		c.Log.Warn("rollout failed; rolling back", "app", key, "failed", failed, "to", to.Revision, "why", why)
	})
}

// admit runs the servers' admission over a template the controller is
// about to write (Apps.Admit); without one (tests of the controller
// alone) everything passes.
func (c *Apps) admit(ctx context.Context, a *api.App) error {
	if c.Admit == nil {
		return nil
	}
	cp := *a
	return c.Admit(ctx, &cp)
}
