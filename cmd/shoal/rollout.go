package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Follow, list, undo and restart an App's rollouts"}
	var timeout time.Duration
	status := &cobra.Command{
		Use:   "status app/NAME",
		Short: "Wait for the current rollout to finish (non-zero exit if it fails)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := appArg(args[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return waitForRollout(ctx, c, g.namespace, name, cmd.OutOrStdout())
		},
	}
	status.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait")

	history := &cobra.Command{
		Use:   "history app/NAME",
		Short: "List the App's recent revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, _, err := getApp(cmd, g, args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tIMAGE\tCREATED\tCAUSE")
			for _, h := range app.Status.History {
				mark := ""
				if h.Revision == app.Status.Revision {
					mark = " (current)"
				}
				fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\n", h.Revision, mark, shortImage(h.Image), age(h.CreatedAt)+" ago", h.Cause)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			// Scheduled changes that made no revision (replicas, paused)
			// are part of the App's story too.
			if sh := app.Status.ScheduleHistory; len(sh) > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "\nSCHEDULED CHANGES (cause: schedule)")
				tw = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "AT\tCHANGE")
				for _, r := range sh {
					fmt.Fprintf(tw, "%s\t%s\n", r.At.Local().Format("2006-01-02 15:04:05"), r.Change)
				}
				return tw.Flush()
			}
			return nil
		},
	}

	var toRevision int64
	undo := &cobra.Command{
		Use:   "undo app/NAME [--to-revision N]",
		Short: "Return the App to an earlier revision's template (default: the one before the current)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, c, err := getApp(cmd, g, args[0])
			if err != nil {
				return err
			}
			var to *api.RevisionRecord
			for i := len(app.Status.History) - 1; i >= 0; i-- {
				h := app.Status.History[i]
				if (toRevision == 0 && h.Revision < app.Status.Revision && h.Hash != app.Status.TemplateHash) || (toRevision != 0 && h.Revision == toRevision) {
					to = &h
					break
				}
			}
			if to == nil {
				if toRevision != 0 {
					return fmt.Errorf("app %s has no revision %d in its history (see `shoal rollout history app/%s`)", app.Metadata.Name, toRevision, app.Metadata.Name)
				}
				return fmt.Errorf("app %s has no earlier revision to return to", app.Metadata.Name)
			}
			app.Spec.Template = to.Template
			app.Spec.Placement = to.Placement
			if err := c.Update(cmd.Context(), app); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "app/%s rolling back to the template of revision %d (%s)\n", app.Metadata.Name, to.Revision, to.Image)
			return nil
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "revision to return to")

	restart := &cobra.Command{
		Use:   "restart app/NAME",
		Short: "Replace every instance with a fresh one, as a rolling update",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, c, err := getApp(cmd, g, args[0])
			if err != nil {
				return err
			}
			app.Spec.RestartedAt = time.Now().UTC().Format(time.RFC3339Nano)
			if err := c.Update(cmd.Context(), app); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "app/%s restarting\n", app.Metadata.Name)
			return nil
		},
	}
	cmd.AddCommand(status, history, undo, restart)
	return cmd
}

// appArg accepts app/NAME (or a bare NAME).
func appArg(s string) (string, error) {
	if kind, name, ok := strings.Cut(s, "/"); ok {
		if kind != "app" && kind != "apps" {
			return "", fmt.Errorf("rollouts are for apps: use app/NAME")
		}
		return name, nil
	}
	return s, nil
}

func getApp(cmd *cobra.Command, g *globals, arg string) (*api.App, *client.Client, error) {
	name, err := appArg(arg)
	if err != nil {
		return nil, nil, err
	}
	c, err := g.client(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	obj, err := c.Get(cmd.Context(), api.MustKind(api.KindApp), g.namespace, name)
	if err != nil {
		return nil, nil, err
	}
	return obj.(*api.App), c, nil
}

// waitForRollout follows an App until its current template is rolled out
// and says so; a failed or rolled-back rollout is an error naming why.
func waitForRollout(ctx context.Context, c *client.Client, ns, name string, out io.Writer) error {
	app, err := c.WaitRollout(ctx, ns, name, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "app/%s rolled out: revision %d, %d/%d ready\n", name, app.Status.Revision, app.Status.Ready, replicas(app))
	return nil
}
