package main

import (
	"sort"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// newEventsCmd lists what happened, oldest first, as `kubectl events` does;
// -w goes on printing new events as they are recorded.
func newEventsCmd(g *globals) *cobra.Command {
	var all, watch bool
	cmd := &cobra.Command{
		Use:   "events [-w] [-n NAMESPACE | -A]",
		Short: "Show recent events (scheduling, starts, exits, rollouts), oldest first; -w follows new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			k := api.MustKind(api.KindEvent)
			ns := g.namespace
			if all {
				ns = ""
			}
			opts := client.ListOptions{}
			objs, rev, err := c.List(cmd.Context(), k, ns, opts)
			if err != nil {
				return err
			}
			sort.SliceStable(objs, func(i, j int) bool {
				return objs[i].(*api.Event).Time.Before(objs[j].(*api.Event).Time)
			})
			if !watch {
				return printList(cmd.Context(), cmd.OutOrStdout(), k, objs, g.output, all)
			}
			return watchList(cmd.Context(), c, k, ns, "", opts, objs, rev, g.output, all, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table, json, yaml or name")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "events of every namespace")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "go on printing new events until interrupted")
	return cmd
}
