package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newScaleCmd(g *globals) *cobra.Command {
	var replicas int32
	cmd := &cobra.Command{
		Use:   "scale app NAME --replicas N",
		Short: "Set the number of replicas of an App",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[len(args)-1]
			if len(args) == 2 && args[0] != "app" && args[0] != "apps" {
				return fmt.Errorf("only apps can be scaled")
			}
			name = strings.TrimPrefix(name, "app/")
			if !cmd.Flags().Changed("replicas") {
				return fmt.Errorf("scale needs --replicas N")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			app, err := c.Scale(cmd.Context(), g.namespace, name, replicas)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "app/%s scaled to %d\n", app.Metadata.Name, *app.Spec.Replicas)
			return nil
		},
	}
	cmd.Flags().Int32Var(&replicas, "replicas", 0, "desired number of replicas")
	return cmd
}
