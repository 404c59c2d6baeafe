package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// ErrRolloutFailed matches the error of a rollout that failed or was rolled
// back while WaitRollout waited.
var ErrRolloutFailed = errors.New("rollout failed")

// WaitRollout follows an App until the template its spec holds now is
// rolled out: every replica of it ready and no older instance left. It
// returns the App as it was then. A failed rollout, or one the controller
// rolled back, is an error matching ErrRolloutFailed; when ctx ends the
// error says how far it got. progress, if set, gets each new state
// ("revision 3: 1/3 ready").
func (c *Client) WaitRollout(ctx context.Context, ns, name string, progress func(string)) (*api.App, error) {
	appKind := api.MustKind(api.KindApp)
	last := ""
	var target string
	// Changes to the App wake the loop at once; the ticker covers a watch
	// that could not be opened or broke.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed, _, werr := c.Watch(wctx, appKind, ns, 0, ListOptions{})
	if werr != nil {
		changed = nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		obj, err := c.Get(ctx, appKind, ns, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("app/%s: timed out waiting: %s", name, last)
			}
			return nil, err
		}
		app := obj.(*api.App)
		st := app.Status
		want := api.TemplateHash(app)
		if target == "" {
			target = want
		}
		state := ""
		switch {
		case st.TemplateHash != want:
			state = "waiting for the controller to see the change"
		case want != target:
			state = "the template changed while waiting"
		case st.Rollout == api.RolloutComplete && st.Ready >= replicasOf(app):
			return app, nil
		case st.Rollout == api.RolloutFailed:
			return app, fmt.Errorf("app/%s: revision %d: %s: %w", name, st.Revision, st.Message, ErrRolloutFailed)
		default:
			state = fmt.Sprintf("revision %d: %d/%d ready", st.Revision, st.Ready, replicasOf(app))
			if st.Message != "" {
				state += ": " + st.Message
			}
		}
		if state != last && progress != nil {
			progress(state)
		}
		last = state
		if want != target && st.TemplateHash == want {
			// The template changed under us: by an automatic rollback (a
			// failure of what we wait for), or by someone else's apply.
			if n := len(st.History); n > 0 && st.History[n-1].Hash == want && st.History[n-1].RolledBackFrom != 0 {
				return app, fmt.Errorf("app/%s: revision %d was rolled back: %s: %w", name, st.History[n-1].RolledBackFrom, st.History[n-1].Cause, ErrRolloutFailed)
			}
			target = want
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("app/%s: timed out waiting: %s", name, last)
		case <-tick.C:
		case _, ok := <-changed:
			if !ok {
				changed = nil
			}
		}
	}
}

func replicasOf(a *api.App) int32 {
	if a.Spec.Replicas == nil {
		return 1
	}
	return *a.Spec.Replicas
}
