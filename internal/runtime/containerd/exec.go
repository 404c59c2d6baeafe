package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Exec bounds.
const (
	// execOutputMax is how much of an exec's output is kept; the rest is
	// read and dropped so the process never blocks on a full pipe.
	execOutputMax = 4 << 10
	// execIODrain is how long Exec waits, after the process exits, for
	// its output to arrive. A child left running in the background can
	// hold the pipes open forever.
	execIODrain = time.Second
	// execCleanup bounds the calls that kill and delete an exec process
	// once the caller's context is done or its timeout passed.
	execCleanup = 10 * time.Second
)

// Exec runs cmd beside the container's process: same user, environment,
// working directory, namespaces and limits, with Args replaced. A timeout
// of 0 waits for as long as ctx allows. It does not take the container's
// lock, so a long exec never holds up Stop; a Stop or Remove meanwhile
// ends the exec with the task.
func (d *Driver) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, string, error) {
	if len(cmd) == 0 {
		return -1, "", fmt.Errorf("container %q: exec: empty command", id)
	}
	ctx = d.ctx(ctx)
	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return -1, "", d.wrap(id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return -1, "", fmt.Errorf("container %q: exec: not running", id)
		}
		return -1, "", fmt.Errorf("container %q: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return -1, "", fmt.Errorf("container %q: task status: %w", id, err)
	}
	if st.Status != containerd.Running {
		return -1, "", fmt.Errorf("container %q: exec: not running (%s)", id, st.Status)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, "", fmt.Errorf("container %q: spec: %w", id, err)
	}
	if spec.Process == nil {
		return -1, "", fmt.Errorf("container %q: spec has no process", id)
	}
	proc := *spec.Process
	proc.Args = cmd
	proc.Terminal = false
	proc.ConsoleSize = nil

	execID, err := newExecID()
	if err != nil {
		return -1, "", err
	}
	out := &cappedBuffer{max: execOutputMax}
	p, err := task.Exec(ctx, execID, &proc, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return -1, "", fmt.Errorf("container %q: exec %q: %s", id, cmd[0], startFailure(err))
	}
	// Everything from here on must delete the process, also when ctx is
	// done: the shim keeps an exec's record until it is deleted.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanup)
	defer cancel()
	defer func() { _, _ = p.Delete(cleanupCtx) }()

	// Wait before Start: a process that exits at once is not missed.
	waitCtx, stopWait := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWait()
	exited, err := p.Wait(waitCtx)
	if err != nil {
		return -1, "", fmt.Errorf("container %q: exec %q: wait: %w", id, cmd[0], err)
	}
	if err := p.Start(ctx); err != nil {
		// The shim may have started it before ctx ended: kill it, so the
		// deferred Delete can remove it.
		if p.Kill(cleanupCtx, syscall.SIGKILL) == nil {
			select {
			case <-exited:
			case <-cleanupCtx.Done():
			}
		}
		if ctx.Err() != nil {
			return -1, "", fmt.Errorf("container %q: exec %q: %w", id, cmd[0], ctx.Err())
		}
		return -1, "", fmt.Errorf("container %q: exec %q: %s", id, cmd[0], startFailure(err))
	}

	var expired <-chan time.Time // no timeout: only ctx ends the wait
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	var stopped error
	select {
	case st := <-exited:
		code, _, err := st.Result()
		if err != nil {
			return -1, "", fmt.Errorf("container %q: exec %q: wait: %w", id, cmd[0], err)
		}
		drainIO(p.IO())
		return int(code), out.String(), nil
	case <-expired:
		stopped = timedOut(fmt.Sprintf("container %q: exec %q: timed out after %s", id, cmd[0], timeout))
	case <-ctx.Done():
		stopped = fmt.Errorf("container %q: exec %q: %w", id, cmd[0], ctx.Err())
	}
	if err := p.Kill(cleanupCtx, syscall.SIGKILL); err != nil && !isNotFound(err) {
		return -1, out.String(), errors.Join(stopped, fmt.Errorf("kill: %w", err))
	}
	select {
	case <-exited:
	case <-cleanupCtx.Done():
	}
	return -1, out.String(), stopped
}

// timedOut reads as its message and matches context.DeadlineExceeded.
type timedOut string

func (e timedOut) Error() string { return string(e) }
func (e timedOut) Unwrap() error { return context.DeadlineExceeded }

// drainIO waits a little for the output copy to reach the end.
func drainIO(pio cio.IO) {
	if pio == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		pio.Wait()
		close(done)
	}()
	t := time.NewTimer(execIODrain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// newExecID is unique per call: containerd refuses a second exec with the
// id of one that still exists.
func newExecID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("exec id: %w", err)
	}
	return "exec-" + hex.EncodeToString(b), nil
}

// cappedBuffer keeps the first max bytes written to it and drops the rest,
// while reporting every write as complete. stdout and stderr write to it
// from two goroutines.
type cappedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}

// Attach runs req.Cmd beside the container's process as Exec does, with
// req's streams attached (and a terminal with req.TTY) until it exits.
func (d *Driver) Attach(ctx context.Context, id string, req runtime.AttachRequest) (int, error) {
	if len(req.Cmd) == 0 {
		return -1, fmt.Errorf("container %q: exec: empty command", id)
	}
	ctx = d.ctx(ctx)
	c, err := d.client.LoadContainer(ctx, id)
	if err != nil {
		return -1, d.wrap(id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if isNotFound(err) {
			return -1, fmt.Errorf("container %q: exec: not running", id)
		}
		return -1, fmt.Errorf("container %q: %w", id, err)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		return -1, fmt.Errorf("container %q: exec: not running", id)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("container %q: spec: %w", id, err)
	}
	if spec.Process == nil {
		return -1, fmt.Errorf("container %q: spec has no process", id)
	}
	proc := *spec.Process
	proc.Args = req.Cmd
	proc.Terminal = req.TTY
	proc.ConsoleSize = nil
	execID, err := newExecID()
	if err != nil {
		return -1, err
	}
	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard // not stdout: the two are copied concurrently
	}
	// The shim keeps the command's stdin open until told to close it:
	// the end of req.Stdin is passed on with CloseIO.
	var stdin io.Reader
	stdinDone := make(chan struct{})
	if req.Stdin != nil {
		stdin = &eofReader{r: req.Stdin, eof: func() { close(stdinDone) }}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr)}
	if req.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	p, err := task.Exec(ctx, execID, &proc, cio.NewCreator(opts...))
	if err != nil {
		return -1, fmt.Errorf("container %q: exec %q: %s", id, req.Cmd[0], startFailure(err))
	}
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execCleanup)
	defer cancel()
	defer func() { _, _ = p.Delete(cleanupCtx) }()
	waitCtx, stopWait := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWait()
	exited, err := p.Wait(waitCtx)
	if err != nil {
		return -1, fmt.Errorf("container %q: exec %q: wait: %w", id, req.Cmd[0], err)
	}
	if err := p.Start(ctx); err != nil {
		return -1, fmt.Errorf("container %q: exec %q: %s", id, req.Cmd[0], startFailure(err))
	}
	if req.Stdin == nil {
		_ = p.CloseIO(ctx, containerd.WithStdinCloser)
	}
	for {
		select {
		case <-stdinDone:
			stdinDone = nil
			_ = p.CloseIO(ctx, containerd.WithStdinCloser)
		case sz, ok := <-req.Resize:
			if !ok {
				req.Resize = nil
				continue
			}
			if req.TTY {
				_ = p.Resize(ctx, uint32(sz.Width), uint32(sz.Height))
			}
		case st := <-exited:
			code, _, err := st.Result()
			if err != nil {
				return -1, fmt.Errorf("container %q: exec %q: wait: %w", id, req.Cmd[0], err)
			}
			drainIO(p.IO())
			return int(code), nil
		case <-ctx.Done():
			_ = p.Kill(cleanupCtx, syscall.SIGKILL)
			select {
			case <-exited:
			case <-cleanupCtx.Done():
			}
			return -1, fmt.Errorf("container %q: exec %q: %w", id, req.Cmd[0], ctx.Err())
		}
	}
}

// eofReader calls eof once, when r is done (EOF or an error).
type eofReader struct {
	r    io.Reader
	eof  func()
	once sync.Once
}

func (e *eofReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil {
		e.once.Do(e.eof)
	}
	return n, err
}
