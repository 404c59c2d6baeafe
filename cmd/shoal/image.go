package main

import (
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/internal/image"
	"github.com/spf13/cobra"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build, push and list images in the cluster's image store"}
	var bo image.BuildOptions
	var out string
	build := &cobra.Command{
		Use:   "build --binary BIN --ref REF -o OUT.tar",
		Short: "Build a one-binary OCI image tarball from a static Linux executable",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bo.Binary == "" || bo.Ref == "" || out == "" {
				return fmt.Errorf("image build needs --binary, --ref and -o")
			}
			if err := image.WriteTarball(out, bo); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s written to %s\n", bo.Ref, out)
			return nil
		},
	}
	build.Flags().StringVar(&bo.Binary, "binary", "", "static Linux executable to put in the image")
	build.Flags().StringVar(&bo.Ref, "ref", "", "image reference, e.g. shoal.local/hello:v1")
	build.Flags().StringVar(&bo.Path, "path", "", "path of the binary inside the image (default /NAME)")
	build.Flags().StringSliceVar(&bo.Entrypoint, "entrypoint", nil, "entrypoint (default: the binary)")
	build.Flags().StringSliceVar(&bo.Env, "env", nil, "KEY=VALUE environment")
	build.Flags().StringSliceVar(&bo.ExposedPorts, "expose", nil, "exposed ports, e.g. 8080/tcp")
	build.Flags().StringVarP(&out, "output", "o", "", "tarball to write")

	push := &cobra.Command{
		Use:   "push FILE.tar",
		Short: "Upload an OCI image tarball so that every node can run it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			refs, err := c.PushImage(cmd.Context(), f)
			if err != nil {
				return fmt.Errorf("push %s: %w", args[0], err)
			}
			for _, r := range refs {
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n", clusterRef(r))
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the images in the cluster's image store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			refs, err := c.Images(cmd.Context())
			if err != nil {
				return err
			}
			for _, r := range refs {
				fmt.Fprintln(cmd.OutOrStdout(), clusterRef(r))
			}
			return nil
		},
	}
	cmd.AddCommand(build, push, list)
	return cmd
}

// clusterRef is how apps name an image of the cluster's store: the store
// keeps repository:tag, and agents resolve the host shoal.local to it.
func clusterRef(repoTag string) string { return "shoal.local/" + repoTag }
