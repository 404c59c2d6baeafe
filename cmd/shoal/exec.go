package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

func newExecCmd(g *globals) *cobra.Command {
	var interactive, tty bool
	cmd := &cobra.Command{
		Use:   "exec INSTANCE|app/NAME [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a running instance (through the API server); its exit code is shoal's",
		Example: `  shoal exec app/web -- cat /etc/resolv.conf
  shoal exec -it web-3f2a1-0 -- sh`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("exec: put the command after --: shoal exec %s -- COMMAND", args[0])
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			name, err := execTarget(cmd, c, g.namespace, args[0])
			if err != nil {
				return err
			}
			opts := client.ExecOptions{Cmd: args[1:], TTY: tty, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			if interactive {
				opts.Stdin = cmd.InOrStdin()
			}
			if tty {
				restore, resize, err := rawTerminal()
				if err != nil {
					return err
				}
				defer restore()
				opts.Resize = resize
			}
			code, err := c.Exec(cmd.Context(), g.namespace, name, opts)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError(code)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&interactive, "stdin", "i", false, "send this terminal's input to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "give the command a terminal (with -i: an interactive shell)")
	return cmd
}

// execTarget names the instance to run in: INSTANCE, or for app/NAME a
// ready instance of the App (else a running one).
func execTarget(cmd *cobra.Command, c *client.Client, ns, arg string) (string, error) {
	kind, name, ok := strings.Cut(arg, "/")
	if !ok {
		return arg, nil
	}
	switch kind {
	case "instance", "instances":
		return name, nil
	case "app", "apps":
	default:
		return "", fmt.Errorf("exec: %q: use INSTANCE, instance/NAME or app/NAME", arg)
	}
	objs, _, err := c.List(cmd.Context(), api.MustKind(api.KindInstance), ns, client.ListOptions{App: name})
	if err != nil {
		return "", err
	}
	var running string
	for _, o := range objs {
		in := o.(*api.Instance)
		if !in.Metadata.DeletedAt.IsZero() || in.Status.Phase != api.PhaseRunning {
			continue
		}
		if in.Status.Ready {
			return in.Metadata.Name, nil
		}
		running = in.Metadata.Name
	}
	if running == "" {
		return "", fmt.Errorf("exec: app %s has no running instance in namespace %s", name, ns)
	}
	return running, nil
}

// rawTerminal puts stdin's terminal into raw mode and reports its size now
// and on every change (SIGWINCH). Without a terminal it is a no-op.
func rawTerminal() (restore func(), sizes <-chan [2]uint16, err error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return func() {}, nil, nil
	}
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("exec -t: %w", err)
	}
	ch := make(chan [2]uint16, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	send := func() {
		if w, h, err := term.GetSize(fd); err == nil {
			select {
			case ch <- [2]uint16{uint16(w), uint16(h)}:
			default:
			}
		}
	}
	send()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				send()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		_ = term.Restore(fd, state)
		_, _ = io.WriteString(os.Stdout, "\r\n")
	}, ch, nil
}
