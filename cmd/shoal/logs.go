package main

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var opts client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs INSTANCE|app/NAME",
		Short: "Print an instance's output (every instance's, prefixed, for app/NAME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			if app, ok := strings.CutPrefix(args[0], "app/"); ok {
				objs, _, err := c.List(ctx, api.MustKind(api.KindInstance), g.namespace, client.ListOptions{App: app})
				if err != nil {
					return err
				}
				if len(objs) == 0 {
					return fmt.Errorf("app %q has no instances", app)
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
