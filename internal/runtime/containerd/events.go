package containerd

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// Events streams the ids of containers whose process exited, as containerd
// reports them, until ctx is done. It is a hint for reacting fast: events
// sent while nobody listens (agent restart, reconnect) are lost, so the
// agent still reconciles from Inspect/List. Slow readers lose events rather
// than block the stream.
func (d *Driver) Events(ctx context.Context) <-chan string {
	out := make(chan string, 64)
	filter := fmt.Sprintf(`topic=="/tasks/exit",namespace==%q`, d.cfg.Namespace)
	go func() {
		defer close(out)
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			received := d.subscribe(ctx, filter, out)
			if ctx.Err() != nil {
				return
			}
			if received {
				backoff = 100 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return out
}

// subscribe forwards exit events until the subscription fails; it reports
// whether any event came through.
func (d *Driver) subscribe(ctx context.Context, filter string, out chan<- string) (received bool) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	envs, errs := d.client.Subscribe(sctx, filter)
	for {
		select {
		case <-ctx.Done():
			return received
		case err := <-errs:
			if err != nil && ctx.Err() == nil {
				d.cfg.Logger.Debug("containerd event stream ended", "namespace", d.cfg.Namespace, "err", err)
			}
			return received
		case env := <-envs:
			if env == nil || env.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			exit, ok := v.(*apievents.TaskExit)
			// Exits of exec'd processes carry another id; only the task's
			// own process ends a run.
			if !ok || (exit.ID != "" && exit.ID != exit.ContainerID) {
				continue
			}
			received = true
			select {
			case out <- exit.ContainerID:
			default:
			}
		}
	}
}
