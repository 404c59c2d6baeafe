package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client's version, and the server's when one answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "client: %s\n", version)
			if _, err := g.serverURL(); err != nil {
				return nil
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "server: unreachable (%v)\n", err)
				return nil
			}
			v, err := c.Version(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server: %s (%s)\n", v, c.Server())
			return nil
		},
	}
}
