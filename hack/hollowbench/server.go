package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controlplane"
)

// The server runs in a process of its own (this binary, -serve DIR), so
// its peak RSS is its own and not the hollow agents'. It tells the bench
// where it is in one JSON line on stdout and stops when its stdin closes,
// which it also does when the bench dies.

// hello is the server process's one line to the bench.
type hello struct {
	URL string `json:"url"`
	// Tokens are join tokens, one for each of the bench's joiners: nodes
	// racing for one token's uses conflict in its transaction.
	Tokens []string `json:"tokens"`
	// Metrics serves this process's default Prometheus registry, where
	// the embedded etcd keeps its counters (plain HTTP on loopback).
	Metrics string        `json:"metrics"`
	Admin   client.Config `json:"admin"`
}

// serve runs the server under dir until stdin closes.
func serve(dir string, nodes int, cpuProfile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = dir, "127.0.0.1:0", slog.New(slog.DiscardHandler)
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { stop(); _ = srv.Wait() }()
	var tokens []string
	for range joiners {
		t, err := srv.CreateToken(ctx, api.TokenRoleAgent, 24*time.Hour, int32((nodes+joiners-1)/joiners), "hollowbench")
		if err != nil {
			return err
		}
		tokens = append(tokens, t)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() { _ = http.Serve(l, promhttp.Handler()) }()
	if err := json.NewEncoder(os.Stdout).Encode(hello{URL: srv.URL(), Tokens: tokens, Metrics: "http://" + l.Addr().String() + "/metrics", Admin: srv.Admin}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// serverProcess is the server as the bench sees it.
type serverProcess struct {
	hello
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startServer starts the server process with its data under dir and
// waits for its hello.
func startServer(ctx context.Context, dir string, nodes int, cpuProfile string) (*serverProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", dir, "-nodes", strconv.Itoa(nodes), "-cpuprofile", cpuProfile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the server process: %w", err)
	}
	p := &serverProcess{cmd: cmd, stdin: stdin}
	got := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &p.hello)
		}
		got <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-got:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("the server process did not say where it listens: %w", err)
	}
	return p, nil
}

// stop closes the server's stdin and waits for it to exit, killing it
// after 30 s.
func (p *serverProcess) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// peakRSS is the most resident memory the server process has had.
func (p *serverProcess) peakRSS() (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return vmHWM(f)
}

// vmHWM reads the peak resident set size, in bytes, from a
// /proc/PID/status file.
func vmHWM(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM line %q: want a number of kB", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM line %q: %w", sc.Text(), err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM line")
}
