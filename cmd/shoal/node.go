package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/netproxy"
	rtcontainerd "github.com/shoal-dev/shoal/internal/runtime/containerd"
)

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Act on this machine as a node",
	}
	cmd.AddCommand(newNodeResetCmd())
	return cmd
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
