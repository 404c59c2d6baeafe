package main

import (
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/controller"
	"github.com/spf13/cobra"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Run Jobs by hand"}
	cmd.AddCommand(&cobra.Command{
		Use:   "run NAME",
		Short: "Start a run of a Job now (NAME-mUNIXTIME), scheduled or not, with its template and completion rules",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			obj, err := c.Get(cmd.Context(), api.MustKind(api.KindJob), g.namespace, args[0])
			if err != nil {
				return err
			}
			parent := obj.(*api.Job)
			run := controller.NewRun(parent, controller.ManualRunName(parent.Metadata.Name, time.Now()))
			if err := c.Create(cmd.Context(), run); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job/%s started (a run of %s)\n", run.Metadata.Name, parent.Metadata.Name)
			return nil
		},
	})
	return cmd
}
