package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
)

var tokenKind = api.MustKind(api.KindToken)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Join tokens and users' bearer tokens: create, list, revoke",
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

// newTokenCreateCmd makes the secret here, on the admin's side: the server
// stores only its hash, and the token carries the CA fingerprint from the
// admin's own config.
func newTokenCreateCmd(g *globals) *cobra.Command {
	var role, user, description string
	var ttl time.Duration
	var uses int
	cmd := &cobra.Command{
		Use:   "create [--role agent|server | --user NAME] [--ttl 24h] [--uses N]",
		Short: "Create a join token, or a user's bearer token, and print it (shown once; the server keeps only a hash)",
		Long: "Create a join token, or a user's bearer token, and print it (shown once; the server keeps only a hash).\n\n" +
			"A join token serves one join (--uses N for N machines); an agent token lasts 24h by default, a server token,\n" +
			"which hands the cluster's CA key to the server that joins with it, 1h.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user != "" {
				if cmd.Flags().Changed("role") && role != string(api.TokenRoleUser) {
					return fmt.Errorf("--user makes a user token; it does not go with --role %s", role)
				}
				role = string(api.TokenRoleUser)
			}
			if !cmd.Flags().Changed("ttl") && role == string(api.TokenRoleServer) {
				ttl = time.Hour
			}
			if cmd.Flags().Changed("uses") && role == string(api.TokenRoleUser) {
				return fmt.Errorf("--uses counts joins; a user token is not used up (revoke it with `shoal token revoke`)")
			}
			if uses < 1 || uses > api.MaxTokenUses {
				return fmt.Errorf("--uses %d: want 1 to %d joins", uses, api.MaxTokenUses)
			}
			tok, err := createToken(cmd.Context(), g, api.TokenRole(role), user, ttl, uses, description)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "agent", "what the token joins: agent (a node) or server")
	cmd.Flags().StringVar(&user, "user", "", "make a bearer token that acts as this user (a service account), sent as Authorization: Bearer")
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token may be used (a server token: 1h unless given)")
	cmd.Flags().IntVar(&uses, "uses", 1, "how many machines may join with the token")
	cmd.Flags().StringVar(&description, "description", "", "a note shown by token list")
	return cmd
}

// createToken makes a token's secret here, stores its hash and returns
// the token as users copy it.
func createToken(ctx context.Context, g *globals, role api.TokenRole, user string, ttl time.Duration, uses int, description string) (string, error) {
	if ttl <= 0 || ttl > 365*24*time.Hour {
		return "", fmt.Errorf("--ttl %v: want between 1s and 8760h", ttl)
	}
	cfg, err := g.clientConfig()
	if err != nil {
		return "", err
	}
	ca, err := pki.ParseCert([]byte(cfg.CA))
	if err != nil {
		return "", fmt.Errorf("the client config holds no cluster CA (%v): use the admin.conf a server wrote", err)
	}
	c, err := g.client(ctx)
	if err != nil {
		return "", err
	}
	tok := pki.NewToken(pki.Fingerprint(ca.Raw))
	obj := api.NewToken(tok.ID, tok.SecretHash(), role, time.Now().Add(ttl), description)
	obj.Spec.User = user
	if role != api.TokenRoleUser {
		n := int32(uses)
		obj.Spec.UsesLeft = &n
	}
	if err := c.Create(ctx, obj); err != nil {
		return "", err
	}
	return tok.String(), nil
}

func newTokenListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tokens (ids, roles, users, expiry; never secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			objs, _, err := c.List(cmd.Context(), tokenKind, "", client.ListOptions{})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tUSER\tUSES LEFT\tEXPIRES\tDESCRIPTION")
			for _, o := range objs {
				t := o.(*api.Token)
				exp := t.Spec.ExpiresAt.UTC().Format(time.RFC3339)
				if time.Now().After(t.Spec.ExpiresAt) {
					exp += " (expired)"
				}
				left := "-"
				if t.Spec.Role != api.TokenRoleUser {
					left = fmt.Sprint(t.JoinsLeft())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Metadata.Name, t.Spec.Role, dash(t.Spec.User), left, exp, t.Spec.Description)
			}
			return tw.Flush()
		},
	}
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: no one can join or call the API with it any more",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), tokenKind, "", args[0], client.DeleteOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
}
