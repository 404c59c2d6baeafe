package main

import (
	"fmt"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newDeleteCmd(g *globals) *cobra.Command {
	var files []string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete (app|instance|node|namespace NAME | -f FILE)",
		Short: "Delete objects by name or by manifest",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			type target struct {
				k        api.KindInfo
				ns, name string
			}
			var targets []target
			switch {
			case len(files) > 0 && len(args) > 0:
				return fmt.Errorf("give either KIND NAME or -f FILE, not both")
			case len(files) > 0:
				ms, err := readManifests(files, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, m := range ms {
					objs, err := api.Decode(m.data)
					if err != nil {
						return fmt.Errorf("%s: %w", m.name, err)
					}
					for _, o := range objs {
						k, _ := api.LookupKind(string(o.GetTypeMeta().Kind))
						targets = append(targets, target{k, o.GetMeta().Namespace, o.GetMeta().Name})
					}
				}
				// Namespaces last, after what they hold.
				for i, j := 0, len(targets)-1; i < j; i, j = i+1, j-1 {
					targets[i], targets[j] = targets[j], targets[i]
				}
			case len(args) == 2:
				k, err := lookupKind(args[0])
				if err != nil {
					return err
				}
				targets = append(targets, target{k, g.namespace, args[1]})
			default:
				return fmt.Errorf("delete needs KIND NAME (e.g. `shoal delete app web`) or -f FILE")
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, t := range targets {
				err := c.Delete(cmd.Context(), t.k, t.ns, t.name, client.DeleteOptions{Force: force})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", lower(string(t.k.Kind)), t.name)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "delete the objects this manifest defines")
	cmd.Flags().BoolVar(&force, "force", false, "remove an instance object at once, without waiting for its container to stop")
	return cmd
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
