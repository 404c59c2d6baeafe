package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/controlplane"
	"github.com/spf13/cobra"
)

func newUpCmd() *cobra.Command {
	var so serverOptions
	var ao agentOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run an all-in-one cluster: API server, embedded etcd, controllers and a node agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			ao.dataDir = filepath.Join(so.dataDir, "agent")
			ao.clusterCIDR = so.clusterCIDR
			ao.portRange = so.portRange
			var wg sync.WaitGroup
			errc := make(chan error, 2)
			err := runServer(ctx, so, log, func(srv *controlplane.Server) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// The agent talks to the server only through its public
					// API, and joins it as any node does: with a token.
					token := func() (string, error) {
						return srv.CreateToken(ctx, api.TokenRoleAgent, 10*time.Minute, 1, "shoal up: its own node")
					}
					ao.forget = srv.ForgetNode
					if err := runAgent(ctx, ao, srv.URL(), token, log); err != nil {
						log.Error("agent stopped", "err", err)
						errc <- err
						cancel()
					}
				}()
			})
			cancel()
			wg.Wait()
			select {
			case aerr := <-errc:
				return aerr
			default:
			}
			return err
		},
	}
	so.flags(cmd.Flags())
	ao.flags(cmd.Flags(), false)
	return cmd
}

func newServerCmd(g *globals) *cobra.Command {
	var so serverOptions
	cmd := &cobra.Command{
		Use:   "server [--join URL --token TOKEN]",
		Short: "Run the control plane alone: API server, embedded etcd (or --etcd-endpoints), controllers; or join another server's cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), so, newLogger(), nil)
		},
	}
	so.flags(cmd.Flags())
	cmd.AddCommand(newServerRemoveCmd(g))
	cmd.Flags().StringVar(&so.join, "join", "", "join the cluster of the server at this URL (https://HOST:PORT); the first start only")
	cmd.Flags().StringVar(&so.token, "token", "", "with --join: a token from `shoal token create --role server`")
	return cmd
}

func newAgentCmd() *cobra.Command {
	var ao agentOptions
	var config string
	cmd := &cobra.Command{
		Use:   "agent --server URL",
		Short: "Run a node agent that runs this node's instances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g := &globals{server: ao.server, config: config}
			url, err := g.serverURL()
			if err != nil {
				return err
			}
			token := func() (string, error) { return ao.token, nil }
			return runAgent(cmd.Context(), ao, url, token, newLogger())
		},
	}
	ao.flags(cmd.Flags(), true)
	cmd.Flags().StringVar(&config, "config", "", "client config file naming the server")
	return cmd
}

func parseCPUFlag(s string) (int64, error)    { return api.ParseCPU(s) }
func parseMemoryFlag(s string) (int64, error) { return api.ParseMemory(s) }

// newServerRemoveCmd takes a server out of the cluster: its etcd member
// leaves, so it no longer counts for (or against) the quorum.
func newServerRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Take a server out of the cluster (its etcd member leaves; stop its process too)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.RemoveServer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s removed\n", args[0])
			return nil
		},
	}
}
