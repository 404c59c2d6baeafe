package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

// ExecOptions describe a command to run in an instance.
type ExecOptions struct {
	Cmd []string
	TTY bool
	// Stdin, if set, is sent to the command; its EOF closes the
	// command's input.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize sends terminal sizes (TTY only); close it or leave it nil.
	Resize <-chan [2]uint16
}

// Exec runs a command in a running instance, through the API server, and
// returns its exit code once it ends.
func (c *Client) Exec(ctx context.Context, ns, name string, opts ExecOptions) (int, error) {
	u, err := url.Parse(c.Server())
	if err != nil {
		return -1, err
	}
	q := url.Values{"cmd": opts.Cmd}
	if opts.TTY {
		q.Set("tty", "1")
	}
	if opts.Stdin != nil {
		q.Set("stdin", "1")
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	if c.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: c.tls}).DialContext(ctx, "tcp", u.Host)
	} else {
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return -1, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Server(), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	auth := ""
	if c.token != "" {
		auth = "Authorization: Bearer " + c.token + "\r\n"
	}
	fmt.Fprintf(conn, "POST %s?%s HTTP/1.1\r\nHost: %s\r\n%sUpgrade: %s\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
		api.ExecPath(url.PathEscape(ns), url.PathEscape(name)), q.Encode(), u.Host, auth, api.ExecUpgrade)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &APIError{Status: api.Status{Code: resp.StatusCode}}
		if jsonErr := json.Unmarshal(b, &e.Status); jsonErr != nil || e.Message == "" {
			e.Message = fmt.Sprintf("exec: %s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		e.Code = resp.StatusCode
		return -1, e
	}

	var wmu sync.Mutex
	send := func(t api.FrameType, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return api.WriteFrame(conn, t, b)
	}
	if opts.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := opts.Stdin.Read(buf)
				if n > 0 && send(api.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(api.FrameStdinClosed, nil)
					return
				}
			}
		}()
	}
	if opts.Resize != nil {
		go func() {
			for sz := range opts.Resize {
				if send(api.FrameResize, api.ResizePayload(sz[0], sz[1])) != nil {
					return
				}
			}
		}()
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	for {
		t, payload, err := api.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("exec: the session ended without an exit code: %w", err)
		}
		switch t {
		case api.FrameStdout:
			_, _ = stdout.Write(payload)
		case api.FrameStderr:
			_, _ = stderr.Write(payload)
		case api.FrameExit:
			code, err := api.ParseExit(payload)
			return int(code), err
		case api.FrameError:
			return -1, fmt.Errorf("exec: %s", payload)
		}
	}
}
