package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/pki"
	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	var signKey string
	var wait, dryRun bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update every object in a YAML or JSON manifest, all or nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("apply needs -f FILE, -f DIR or -f -")
			}
			manifests, err := readManifests(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			if signKey != "" {
				if manifests, err = signManifests(cmd.Context(), manifests, signKey, c.ImageDigest); err != nil {
					return err
				}
			}
			var applied []api.ApplyResult
			for _, m := range manifests {
				res, err := c.Apply(cmd.Context(), m.data, client.ApplyOptions{DryRun: dryRun})
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				for _, r := range res {
					printApplied(cmd.OutOrStdout(), r, dryRun)
				}
				applied = append(applied, res...)
			}
			if !wait || dryRun {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for _, r := range applied {
				if r.Kind != api.KindApp {
					continue
				}
				if err := waitForApp(ctx, c, r.Namespace, r.Name, cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file, directory of .yaml/.yml/.json files, or - for stdin")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show what would change; store nothing")
	cmd.Flags().StringVar(&signKey, "sign-key", "", "sign every App's and Job's template with this key (from `shoal key create`)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every applied App has all its replicas running")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

// printApplied says what apply did, or on a dry run would do, with one
// object: "app/web configured (dry run)" and the changed fields.
func printApplied(w io.Writer, r api.ApplyResult, dryRun bool) {
	suffix := ""
	if dryRun {
		suffix = " (dry run)"
	}
	fmt.Fprintf(w, "%s/%s %s%s\n", strings.ToLower(string(r.Kind)), r.Name, r.Action, suffix)
	for _, d := range r.Diff {
		fmt.Fprintf(w, "  %s\n", d)
	}
}

// signManifests signs every App and Job of the manifests with the key in
// keyFile, for the namespace each is in, and returns them re-encoded (as
// JSON documents, with defaults filled: the signature covers the template
// exactly as the server will store it). An image of the cluster's store
// named by tag is first pinned to the digest the tag points at (digest
// asks the server), so the signature covers the image itself, not a tag
// that a later push could move.
func signManifests(ctx context.Context, ms []manifest, keyFile string, digest func(ctx context.Context, repo, tag string) (string, error)) ([]manifest, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--sign-key: %w", err)
	}
	priv, err := pki.ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("--sign-key %s: %w", keyFile, err)
	}
	key := pki.VerifyKeyString(priv.Public().(ed25519.PublicKey))
	out := make([]manifest, 0, len(ms))
	for _, m := range ms {
		objs, err := api.Decode(m.data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		var docs [][]byte
		for _, o := range objs {
			var t *api.Template
			switch v := o.(type) {
			case *api.App:
				t = &v.Spec.Template
			case *api.Job:
				api.SetDefaults(v) // a Job's restart policy defaults to Never, not an App's Always
				t = &v.Spec.Template
			}
			if t != nil {
				if repo, tag, pinned, ok := api.LocalImage(t.Image); ok && pinned == "" {
					d, err := digest(ctx, repo, tag)
					if err != nil {
						return nil, fmt.Errorf("%s: %s %q: --sign-key pins the image to a digest before signing: %w", m.name, o.GetTypeMeta().Kind, o.GetMeta().Name, err)
					}
					t.Image += "@" + d
				}
				ns := o.GetMeta().Namespace
				t.Signature = nil
				t.Signature = &api.Signature{Key: key, Value: pki.Sign(priv, api.SignedBytes(t, ns)), Namespace: ns}
			}
			j, err := json.Marshal(o)
			if err != nil {
				return nil, err
			}
			docs = append(docs, j)
		}
		out = append(out, manifest{m.name, bytes.Join(docs, []byte("\n---\n"))})
	}
	return out, nil
}

type manifest struct {
	name string
	data []byte
}

func readManifests(paths []string, stdin io.Reader) ([]manifest, error) {
	var out []manifest
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
			if err != nil {
				return nil, err
			}
			out = append(out, manifest{"stdin", b})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, manifest{p, b})
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					names = append(names, e.Name())
				}
			}
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(p, n))
			if err != nil {
				return nil, err
			}
			out = append(out, manifest{filepath.Join(p, n), b})
		}
	}
	return out, nil
}

// waitForApp waits until the App's applied template is rolled out.
func waitForApp(ctx context.Context, c *client.Client, ns, name string, out io.Writer) error {
	return waitForRollout(ctx, c, ns, name, out)
}
