package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/shoal-dev/shoal/internal/node"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	rtcontainerd "github.com/shoal-dev/shoal/internal/runtime/containerd"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Cordon, drain, remove or mark as relay a node of the cluster, or reset this machine",
	}
	cmd.AddCommand(newNodeRemoveCmd(g), newNodeResetCmd(),
		newNodeMarkCmd(g, "cordon", "Keep new instances off a node (its running ones stay)", func(s *api.NodeSpec) { s.Unschedulable = true }),
		newNodeMarkCmd(g, "uncordon", "Let a cordoned or drained node take instances again", func(s *api.NodeSpec) { s.Unschedulable, s.Draining = false, false }),
		newNodeDrainCmd(g), newNodeRelayCmd(g))
	return cmd
}

// setNodeSpec changes a Node's spec with a read-modify-write on its
// revision, retrying when the agent wrote it in between.
func setNodeSpec(ctx context.Context, c *client.Client, name string, change func(*api.NodeSpec)) error {
	for {
		obj, err := c.Get(ctx, api.MustKind(api.KindNode), "", name)
		if err != nil {
			return err
		}
		n := obj.(*api.Node)
		change(&n.Spec)
		err = c.Update(ctx, n)
		if !errors.Is(err, client.ErrConflict) {
			return err
		}
	}
}

func newNodeMarkCmd(g *globals, verb, short string, change func(*api.NodeSpec)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := setNodeSpec(cmd.Context(), c, args[0], change); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s %sed\n", args[0], verb)
			return nil
		},
	}
}

// newNodeDrainCmd cordons a node and has its instances moved elsewhere as
// a rollout moves them (new ones ready first, within each App's maxSurge
// and maxUnavailable), then waits until none is left there.
func newNodeDrainCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain NAME [--timeout 5m]",
		Short: "Move a node's instances to other nodes, new ones ready before old ones stop; the node stays cordoned",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			name := args[0]
			if err := setNodeSpec(cmd.Context(), c, name, func(s *api.NodeSpec) { s.Unschedulable, s.Draining = true, true }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s cordoned; draining\n", name)
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			stuck := fmt.Errorf("node %s: instances still there after %v (can other nodes take them? shoal get instances -A); the drain goes on", name, timeout)
			for left := -1; ; {
				objs, _, err := c.List(ctx, api.MustKind(api.KindInstance), "", client.ListOptions{Node: name})
				if ctx.Err() != nil {
					return stuck
				}
				if err != nil {
					return err
				}
				var names []string
				for _, o := range objs {
					// Removed ones count until their containers are gone.
					if in := o.(*api.Instance); !in.Status.Phase.Terminal() || in.Status.Phase == api.PhaseRunning {
						names = append(names, in.Metadata.Namespace+"/"+in.Metadata.Name)
					}
				}
				if len(names) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "node %s drained\n", name)
					return nil
				}
				if len(names) != left {
					left = len(names)
					fmt.Fprintf(cmd.OutOrStdout(), "%d instances left: %s\n", left, strings.Join(names, " "))
				}
				select {
				case <-ctx.Done():
					return stuck
				case <-time.After(time.Second):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the node to empty")
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
the namespace's images and the namespace itself, the bridge, its
masquerade rule and its egress rules (SHOAL-EGRESS-BRIDGE, SHOAL-HOST-BRIDGE), the overlay's masquerade rule, the service-proxy chains, the routes agents install, and
the agent's data directory. Stop the agent first. Safe to run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if os.Geteuid() != 0 {
				return errors.New("node reset changes the host's network and containers: run it as root")
			}
			if err := node.Reset(ctx, node.ResetConfig{DataDir: dataDir, ContainerdAddress: address,
				RuntimeNamespace: namespace, Bridge: bridge, Routes: routes}); err != nil {
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
