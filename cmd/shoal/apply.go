package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	var wait bool
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
			var applied []client.ApplyResult
			for _, m := range manifests {
				res, err := c.Apply(cmd.Context(), m.data)
				if err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
				for _, r := range res {
					fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", strings.ToLower(string(r.Kind)), r.Name, r.Action)
				}
				applied = append(applied, res...)
			}
			if !wait {
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
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every applied App has all its replicas running")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
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

// waitForApp polls until the App's current revision has all its replicas
// running and no older instances remain.
func waitForApp(ctx context.Context, c *client.Client, ns, name string, out io.Writer) error {
	last := ""
	for {
		obj, err := c.Get(ctx, api.MustKind(api.KindApp), ns, name)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("app %s: timed out waiting: %s", name, last)
			}
			return err
		}
		app := obj.(*api.App)
		insts, _, err := c.List(ctx, api.MustKind(api.KindInstance), ns, client.ListOptions{App: name})
		if err == nil {
			want := *app.Spec.Replicas
			var running, others int32
			for _, o := range insts {
				in := o.(*api.Instance)
				if in.Spec.App != name {
					continue
				}
				if in.Spec.Revision == app.Status.Revision && in.Metadata.DeletedAt.IsZero() && in.Status.Phase == api.PhaseRunning {
					running++
				} else {
					others++
				}
			}
			last = fmt.Sprintf("%d/%d running", running, want)
			if app.Status.Message != "" {
				last += ": " + app.Status.Message
			}
			if app.Status.Revision > 0 && running == want && others == 0 {
				fmt.Fprintf(out, "app/%s ready: %d/%d running\n", name, running, want)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("app %s: timed out waiting: %s", name, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
