package main

import (
	"os"

	"github.com/shoal-dev/shoal/internal/runtime/containerd/logger"
	"github.com/spf13/cobra"
)

// newRuntimeLoggerCmd is run by containerd's shim, not by people: it
// writes a container's output to its log file and rotates it by size.
func newRuntimeLoggerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "runtime-logger",
		Hidden:             true,
		DisableFlagParsing: true,
		Run: func(*cobra.Command, []string) {
			os.Exit(logger.Main())
		},
	}
}
