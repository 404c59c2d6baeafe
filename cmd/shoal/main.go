// Command shoal is the one binary: all-in-one cluster, server, agent and
// the CLI. This package is wiring only; behaviour lives in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee)) // the exit code of a command run by exec: it said what it had to
		}
		// Errors may quote what a node or an instance said (term.go).
		fmt.Fprintln(os.Stderr, "error:", api.EscapeTerminalText(err.Error()))
		os.Exit(1)
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// globals are the flags every CLI verb shares.
type globals struct {
	server    string
	config    string
	namespace string
	output    string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "shoal",
		Short:         "shoal runs containers across machines that belong to different owners",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "API server URL (overrides --config)")
	pf.StringVar(&g.config, "config", "", "client config file (default $SHOAL_CONFIG, ~/.shoal/config, /var/lib/shoal/admin.conf)")
	pf.StringVarP(&g.namespace, "namespace", "n", "default", "namespace")
	root.AddCommand(
		newUpCmd(), newServerCmd(g), newAgentCmd(),
		newApplyCmd(g), newGetCmd(g), newDescribeCmd(g), newDeleteCmd(g), newScaleCmd(g),
		newLogsCmd(g), newRolloutCmd(g), newImageCmd(g), newVersionCmd(g), newNodeCmd(g), newEventsCmd(g), newExecCmd(g), newTokenCmd(g), newKeyCmd(), newSecretCmd(g), newUserCmd(g), newRoleCmd(g), newJobCmd(g), newTopCmd(g),
	)
	return root
}
