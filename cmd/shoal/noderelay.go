package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
)

// newNodeRelayCmd marks a node as a relay of the overlay, or unmarks it.
// A relay forwards, and so decrypts, the traffic between nodes that are
// both behind NAT: only a cluster-admin decides which nodes are relays.
func newNodeRelayCmd(g *globals) *cobra.Command {
	var off bool
	cmd := &cobra.Command{
		Use:   "relay NAME",
		Short: "Let a node with an endpoint relay overlay traffic between nodes behind NAT (--off: no longer)",
		Long: `Mark a node as a relay of the WireGuard overlay. Two nodes that are both
behind NAT reach each other through the first Ready relay (by name) that
publishes an endpoint; it decrypts and forwards their traffic, so mark only
machines you trust with it. With no relay, such nodes do not reach each other.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := setNodeSpec(cmd.Context(), c, args[0], func(s *api.NodeSpec) { s.Relay = !off }); err != nil {
				return err
			}
			if off {
				fmt.Fprintf(cmd.OutOrStdout(), "node %s is no longer a relay\n", args[0])
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "node %s is a relay\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&off, "off", false, "unmark the node: it relays no more")
	return cmd
}
