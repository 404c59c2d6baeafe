package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Secrets' encryption at rest",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate-key",
		Short: "Make a new encryption key for Secrets and re-encrypt every Secret with it (Apps do not restart)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			var out struct {
				Key      string `json:"key"`
				Resealed int    `json:"resealed"`
			}
			if err := c.Do(context.WithoutCancel(cmd.Context()), http.MethodPost, "/api/v1/secret-keys/rotate", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret key %s is current; %d secrets re-encrypted with it\n", out.Key, out.Resealed)
			return nil
		},
	})
	return cmd
}
