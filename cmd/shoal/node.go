package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/netproxy"
	rtcontainerd "github.com/shoal-dev/shoal/internal/runtime/containerd"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Remove a node from the cluster, or reset this machine",
	}
	cmd.AddCommand(newNodeRemoveCmd(g), newNodeResetCmd())
	return cmd
}

// newNodeRemoveCmd removes a node from the cluster: its Node goes, so the
// certificate issued for it is refused from the next request on.
func newNodeRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a node: its certificate is revoked at once and its instances are placed elsewhere",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), api.MustKind(api.KindNode), "", args[0], client.DeleteOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s removed; its certificate is revoked (to join it again: a new token)\n", args[0])
			return nil
		},
	}
}

// newNodeResetCmd undoes what an agent made on this host, as kubeadm reset
// does: run it after the agent has stopped.
func newNodeResetCmd() *cobra.Command {
	var (
		dataDir, address, namespace, bridge string
		routes                              bool
	)
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove what shoal made on this machine: containers, images, network namespaces, bridge, iptables rules, routes, agent state",
		Long: `Removes, for the agent that ran with the same flags: every container of its
containerd namespace (tasks, snapshots, network namespaces, IPs, port rules),
the namespace's images and the namespace itself, the bridge and its
masquerade rule, the service-proxy chains, the routes agents install, and
the agent's data directory. Stop the agent first. Safe to run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if os.Geteuid() != 0 {
				return errors.New("node reset changes the host's network and containers: run it as root")
			}
			var errs []error
			err := rtcontainerd.Reset(ctx, rtcontainerd.Config{
				Address:   address,
				Namespace: namespace,
				StateDir:  filepath.Join(dataDir, "runtime"),
				Network:   rtcontainerd.NetworkConfig{Bridge: bridge},
			})
			errs = append(errs, err)
			errs = append(errs, netproxy.Reset(ctx, bridge, ""))
			if routes {
				errs = append(errs, agent.ResetRoutes(ctx))
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("node reset left something behind: %w", err)
			}
			if err := os.RemoveAll(dataDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node reset: containerd namespace %q, bridge %s and %s removed\n", namespace, bridge, dataDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", filepath.Join(defaultDataDir, "agent"), "the agent's data directory")
	f.StringVar(&address, "containerd-address", rtcontainerd.DefaultAddress, "containerd socket")
	f.StringVar(&namespace, "runtime-namespace", rtcontainerd.DefaultNamespace, "the agent's containerd namespace")
	f.StringVar(&bridge, "bridge", rtcontainerd.DefaultBridge, "the agent's bridge")
	f.BoolVar(&routes, "routes", true, "also remove the routes to other nodes' subnets")
	return cmd
}
