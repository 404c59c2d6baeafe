package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var opts client.LogOptions
	var raw bool
	cmd := &cobra.Command{
		Use:   "logs INSTANCE|app/NAME|job/NAME",
		Short: "Print an instance's output (every instance's, prefixed, for app/NAME and job/NAME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if !raw && isTerminal(out) {
				tw := &termWriter{w: out}
				defer tw.Close()
				out = tw
			}
			app, isApp := strings.CutPrefix(args[0], "app/")
			job, isJob := strings.CutPrefix(args[0], "job/")
			if isApp || isJob {
				var objs []api.Object
				var err error
				if isApp {
					objs, _, err = c.List(ctx, api.MustKind(api.KindInstance), g.namespace, client.ListOptions{App: app})
				} else {
					objs, err = jobInstances(ctx, c, g.namespace, job)
				}
				if err != nil {
					return err
				}
				if len(objs) == 0 {
					return fmt.Errorf("%s has no instances", args[0])
				}
				var mu sync.Mutex
				var wg sync.WaitGroup
				for _, o := range objs {
					name := o.GetMeta().Name
					rc, err := c.Logs(ctx, g.namespace, name, opts)
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", name, err)
						continue
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer rc.Close()
						copyPrefixed(out, rc, "["+name+"] ", &mu)
					}()
				}
				wg.Wait()
				return nil
			}
			name := strings.TrimPrefix(args[0], "instance/")
			rc, err := c.Logs(ctx, g.namespace, name, opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(out, rc)
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep streaming new output")
	cmd.Flags().IntVar(&opts.Tail, "tail", -1, "lines from the end to show (-1: all)")
	cmd.Flags().BoolVarP(&opts.Previous, "previous", "p", false, "the output of the previous run (before the last restart)")
	cmd.Flags().BoolVar(&raw, "raw", false, "on a terminal too, print the output byte for byte (colours, and whatever else the instance sends your terminal); piped output always is")
	return cmd
}

func copyPrefixed(w io.Writer, r io.Reader, prefix string, mu *sync.Mutex) {
	buf := make([]byte, 32<<10)
	var partial []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			partial = append(partial, buf[:n]...)
			for {
				i := strings.IndexByte(string(partial), '\n')
				if i < 0 {
					break
				}
				mu.Lock()
				fmt.Fprintf(w, "%s%s\n", prefix, partial[:i])
				mu.Unlock()
				partial = partial[i+1:]
			}
		}
		if err != nil {
			if len(partial) > 0 {
				mu.Lock()
				fmt.Fprintf(w, "%s%s\n", prefix, partial)
				mu.Unlock()
			}
			return
		}
	}
}

// jobInstances are the instances of Job name and, for a scheduled one, of
// its runs, oldest first.
func jobInstances(ctx context.Context, c *client.Client, ns, name string) ([]api.Object, error) {
	jobs := []string{name}
	runs, _, err := c.List(ctx, api.MustKind(api.KindJob), ns, client.ListOptions{Labels: api.LabelCronJob + "=" + name})
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		jobs = append(jobs, r.GetMeta().Name)
	}
	var out []api.Object
	for _, j := range jobs {
		objs, _, err := c.List(ctx, api.MustKind(api.KindInstance), ns, client.ListOptions{Labels: api.LabelJob + "=" + j})
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	slices.SortFunc(out, func(a, b api.Object) int { return a.GetMeta().CreatedAt.Compare(b.GetMeta().CreatedAt) })
	return out, nil
}
