package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
)

var userKind = api.MustKind(api.KindUser)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Users: create (with a credential file), list, delete",
	}
	var role, out string
	var bearer bool
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create NAME [--role viewer|deployer|admin|cluster-admin] [-n NAMESPACE] [-o FILE] [--token [--ttl 8760h]]",
		Short: "Create a user and write its client config (server, CA, and a certificate for a key made here, or with --token a bearer token) to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if out == "" {
				out = name + ".conf"
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists: it is not overwritten", out)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			cfg, err := g.clientConfig()
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			u := &api.User{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindUser}, Metadata: api.ObjectMeta{Name: name}}
			if role != "" {
				u.Spec.Roles = []api.RoleBinding{binding(api.Role(role), g.namespace)}
			}
			if err := c.Create(cmd.Context(), u); err != nil {
				return err
			}
			if bearer {
				tok, err := createToken(cmd.Context(), g, api.TokenRoleUser, name, ttl, 0, "user create "+name)
				if err != nil {
					return err
				}
				if err := client.WriteConfig(out, client.Config{Server: cfg.Server, CA: cfg.CA, Token: tok}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s created; its credential (a bearer token) is %s (give it to them; shoal --config %s …)\n", name, out, out)
				return nil
			}
			key, err := pki.NewKey()
			if err != nil {
				return err
			}
			pub, err := pki.EncodePublicKey(key.Public())
			if err != nil {
				return err
			}
			var creds api.Credentials
			if err := c.Do(cmd.Context(), http.MethodPost, client.Path(userKind, "", name)+"/certificate", api.CertificateRequest{PublicKey: string(pub)}, &creds); err != nil {
				return err
			}
			keyPEM, err := pki.EncodeKey(key)
			if err != nil {
				return err
			}
			if err := client.WriteConfig(out, client.Config{Server: cfg.Server, CA: creds.CA, Certificate: creds.Certificate, Key: string(keyPEM)}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s created; its credential is %s (give it to them; shoal --config %s …)\n", name, out, out)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "a first role: viewer, deployer or admin in -n NAMESPACE, or cluster-admin")
	create.Flags().StringVarP(&out, "output", "o", "", "where to write the credential (default NAME.conf, 0600)")
	create.Flags().BoolVar(&bearer, "token", false, "give the user a bearer token instead of a certificate (a service account: CI, scripts)")
	create.Flags().DurationVar(&ttl, "ttl", 365*24*time.Hour, "with --token: how long the token lasts")

	list := &cobra.Command{
		Use:   "list",
		Short: "List users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			objs, _, err := c.List(cmd.Context(), userKind, "", client.ListOptions{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLES")
			for _, o := range objs {
				u := o.(*api.User)
				var roles []string
				for _, b := range u.Spec.Roles {
					if b.Namespace == "" {
						roles = append(roles, string(b.Role))
					} else {
						roles = append(roles, string(b.Role)+"@"+b.Namespace)
					}
				}
				fmt.Fprintf(tw, "%s\t%v\n", u.Metadata.Name, roles)
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user: its certificates and tokens are refused from the next request on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), userKind, "", args[0], client.DeleteOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

// binding is a role in ns, or cluster-wide for cluster-admin.
func binding(role api.Role, ns string) api.RoleBinding {
	if role == api.RoleClusterAdmin {
		return api.RoleBinding{Role: role}
	}
	return api.RoleBinding{Role: role, Namespace: ns}
}

func newRoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Give users roles",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "bind ROLE USER [-n NAMESPACE]",
		Short: "Give USER the role viewer, deployer or admin in a namespace, or cluster-admin",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			obj, err := c.Get(cmd.Context(), userKind, "", args[1])
			if err != nil {
				return err
			}
			u := obj.(*api.User)
			b := binding(api.Role(args[0]), g.namespace)
			if !slices.Contains(u.Spec.Roles, b) {
				u.Spec.Roles = append(u.Spec.Roles, b)
			}
			if err := c.Update(cmd.Context(), u); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s: %v\n", u.Metadata.Name, u.Spec.Roles)
			return nil
		},
	})
	return cmd
}
