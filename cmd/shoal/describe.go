package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe app|instance|node NAME",
		Short: "Show an object's spec, status, related instances and recent events",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			obj, err := c.Get(ctx, k, g.namespace, args[1])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			m := obj.GetMeta()
			fmt.Fprintf(w, "Name:       %s\n", m.Name)
			if m.Namespace != "" {
				fmt.Fprintf(w, "Namespace:  %s\n", m.Namespace)
			}
			fmt.Fprintf(w, "Kind:       %s\nCreated:    %s (%s ago)\nRevision:   %d\n", k.Kind, m.CreatedAt.Local().Format("2006-01-02 15:04:05"), age(m.CreatedAt), m.Revision)
			if len(m.Labels) > 0 {
				fmt.Fprintf(w, "Labels:     %s\n", labelString(m.Labels))
			}
			if err := printSection(w, "Spec", specOf(obj)); err != nil {
				return err
			}
			if err := printSection(w, "Status", statusOf(obj)); err != nil {
				return err
			}
			if app, ok := obj.(*api.App); ok {
				printScheduled(w, app, time.Now())
			}
			var related []api.Object
			switch k.Kind {
			case api.KindJob:
				related, err = jobInstances(ctx, c, g.namespace, m.Name)
			case api.KindApp:
				related, _, err = c.List(ctx, api.MustKind(api.KindInstance), g.namespace, client.ListOptions{App: m.Name})
			case api.KindNode:
				related, _, err = c.List(ctx, api.MustKind(api.KindInstance), "", client.ListOptions{Node: m.Name})
			}
			if err != nil {
				return err
			}
			if related != nil {
				fmt.Fprintln(w, "Instances:")
				if len(related) == 0 {
					fmt.Fprintln(w, "  (none)")
				} else {
					tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
					fmt.Fprintln(tw, "  "+strings.Join(columns(api.KindInstance, false), "\t"))
					for _, o := range related {
						fmt.Fprintln(tw, "  "+strings.Join(rowOf(o, false), "\t"))
					}
					tw.Flush()
				}
			}
			return printEvents(cmd, c, g.namespace, string(k.Kind)+"/"+m.Name, related)
		},
	}
}

func printEvents(cmd *cobra.Command, c *client.Client, ns, object string, related []api.Object) error {
	evNS := ns
	if evNS == "" {
		evNS = api.DefaultNamespace
	}
	objs, _, err := c.List(cmd.Context(), api.MustKind(api.KindEvent), evNS, client.ListOptions{})
	if err != nil {
		return err
	}
	want := map[string]bool{object: true}
	for _, o := range related {
		want[string(api.KindInstance)+"/"+o.GetMeta().Name] = true
	}
	var evs []*api.Event
	for _, o := range objs {
		if ev := o.(*api.Event); want[ev.Object] {
			evs = append(evs, ev)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	if len(evs) > 20 {
		evs = evs[len(evs)-20:]
	}
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "Events:")
	if len(evs) == 0 {
		fmt.Fprintln(w, "  (none in the last hour)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  AGE\tTYPE\tOBJECT\tREASON\tMESSAGE")
	for _, ev := range evs {
		cells := escapeCells([]string{age(ev.Time), ev.Type, ev.Object, ev.Reason, ev.Message})
		fmt.Fprintln(tw, "  "+strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func labelString(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// printScheduled lists an App's next scheduled changes (and when its
// maintenance window opens) and the last ones applied.
func printScheduled(w io.Writer, app *api.App, now time.Time) {
	if len(app.Spec.Schedule) == 0 && app.Spec.Update.Window == nil {
		return
	}
	fmt.Fprintln(w, "Scheduled:")
	type next struct {
		at   time.Time
		what string
	}
	var ns []next
	for i, ch := range app.Spec.Schedule {
		if t := ch.NextAfter(now); !t.IsZero() {
			ns = append(ns, next{t, fmt.Sprintf("set %s (schedule[%d], %s)", ch.Set.String(), i, ch.When())})
		}
	}
	if win := app.Spec.Update.Window; win != nil {
		if open, at := win.Open(now); open {
			ns = append(ns, next{at, "maintenance window closes (open now: rollouts go ahead)"})
		} else {
			ns = append(ns, next{at, "maintenance window opens (rollouts of new revisions wait for it)"})
		}
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].at.Before(ns[j].at) })
	for i, n := range ns {
		if i == 5 {
			break
		}
		fmt.Fprintf(w, "  next  %s (in %s)  %s\n", n.at.Local().Format("2006-01-02 15:04:05"), n.at.Sub(now).Round(time.Second), n.what)
	}
	h := app.Status.ScheduleHistory
	for _, r := range h[max(0, len(h)-5):] {
		fmt.Fprintf(w, "  done  %s  %s\n", r.At.Local().Format("2006-01-02 15:04:05"), r.Change)
	}
}

func specOf(o api.Object) any {
	switch v := o.(type) {
	case *api.App:
		return v.Spec
	case *api.Instance:
		return v.Spec
	case *api.Node:
		return v.Spec
	case *api.Job:
		return v.Spec
	}
	return nil
}

func statusOf(o api.Object) any {
	switch v := o.(type) {
	case *api.App:
		return v.Status
	case *api.Instance:
		return v.Status
	case *api.Node:
		return v.Status
	case *api.Job:
		return v.Status
	}
	return nil
}

func printSection(w io.Writer, title string, v any) error {
	if v == nil {
		return nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s:\n", title)
	// YAML quotes C0 controls, not bidi overrides (term.go).
	for _, line := range strings.Split(strings.TrimRight(api.EscapeTerminalText(string(b)), "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
	return nil
}
