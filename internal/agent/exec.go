package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/runtime"
)

// serveExec runs a command in one of this node's running instances for
// `shoal exec`, which reaches it only through the API server: the request
// is upgraded to a stream of api frames (stdin and resizes in; stdout,
// stderr and the exit code out). A client that goes away kills the
// command.
func (a *Agent) serveExec(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	q := r.URL.Query()
	cmd := q["cmd"]
	if len(cmd) == 0 || cmd[0] == "" {
		http.Error(w, "exec needs a command (?cmd=)", http.StatusBadRequest)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), api.ExecUpgrade) {
		http.Error(w, "exec needs Upgrade: "+api.ExecUpgrade, http.StatusUpgradeRequired)
		return
	}
	in, _ := a.want(key)
	if in == nil || !in.Metadata.DeletedAt.IsZero() {
		http.Error(w, fmt.Sprintf("instance %s does not run on node %s", key, a.cfg.NodeName), http.StatusNotFound)
		return
	}
	id := containerID(in)
	if st, err := a.cfg.Driver.Inspect(r.Context(), id); err != nil || st.State != runtime.StateRunning {
		http.Error(w, fmt.Sprintf("instance %s is not running", key), http.StatusConflict)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take over the connection: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_ = conn.SetDeadline(time.Time{}) // a session lasts as long as it needs
	defer conn.Close()
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "+api.ExecUpgrade+"\r\nConnection: Upgrade\r\n\r\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &frameWriter{conn: conn}
	req := runtime.AttachRequest{
		Cmd:    cmd,
		TTY:    q.Get("tty") == "1",
		Stdout: out.of(api.FrameStdout),
		Stderr: out.of(api.FrameStderr),
	}
	resize := make(chan runtime.TermSize, 4)
	req.Resize = resize
	var stdin *io.PipeWriter
	if q.Get("stdin") == "1" {
		var pr *io.PipeReader
		pr, stdin = io.Pipe()
		req.Stdin = pr
	}
	go readClientFrames(ctx, buf.Reader, stdin, resize, cancel)

	a.log.Info("exec", "instance", key, "cmd", cmd, "tty", req.TTY)
	code, err := a.cfg.Driver.Attach(ctx, id, req)
	if err != nil {
		_ = out.write(api.FrameError, []byte(err.Error()))
		return
	}
	_ = out.write(api.FrameExit, api.ExitPayload(int32(code)))
}

// readClientFrames feeds stdin and resizes to the command until the client
// closes; a client gone (not just its stdin) cancels the command.
func readClientFrames(ctx context.Context, r *bufio.Reader, stdin *io.PipeWriter, resize chan<- runtime.TermSize, cancel func()) {
	defer func() {
		if stdin != nil {
			stdin.Close()
		}
	}()
	for {
		t, payload, err := api.ReadFrame(r)
		if err != nil {
			cancel()
			return
		}
		switch t {
		case api.FrameStdin:
			if stdin != nil {
				if _, err := stdin.Write(payload); err != nil {
					stdin = nil // the command closed its input
				}
			}
		case api.FrameStdinClosed:
			if stdin != nil {
				stdin.Close()
				stdin = nil
			}
		case api.FrameResize:
			if w, h, err := api.ParseResize(payload); err == nil {
				select {
				case resize <- runtime.TermSize{Width: w, Height: h}:
				case <-ctx.Done():
					return
				default: // a newer size will follow
				}
			}
		}
	}
}

// frameWriter sends frames on one connection from several writers.
type frameWriter struct {
	mu   sync.Mutex
	conn net.Conn
}

func (f *frameWriter) write(t api.FrameType, b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.WriteFrame(f.conn, t, b)
}

func (f *frameWriter) of(t api.FrameType) io.Writer { return frameStream{f, t} }

type frameStream struct {
	f *frameWriter
	t api.FrameType
}

func (s frameStream) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		if err := s.f.write(s.t, b[:n]); err != nil {
			return 0, err
		}
		b = b[n:]
	}
	return total, nil
}
