package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRoutes(t *testing.T) {
	exited := -1
	a := &app{instance: "hello-1", host: "node-a", exit: func(code int) { exited = code }}
	h := a.routes()

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/", 200, "hello dev from hello-1 on node-a\n"},
		{"/healthz", 200, "ok\n"},
		{"/nope", 404, "404 page not found\n"},
		{"/crash", 200, "crashing with exit code 3\n"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
		}
	}
	if exited != 3 {
		t.Errorf("GET /crash exited with %d, want 3", exited)
	}
}

func TestHealthzWaitsForReadyDelay(t *testing.T) {
	a := &app{readyAt: time.Now().Add(time.Hour)}
	rec := httptest.NewRecorder()
	a.routes().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz before ready delay = %d, want 503", rec.Code)
	}
}

// TestBinary builds the real static binary and drives it as a container
// runtime would: start, request, crash with code 3, stop with SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	start := func(t *testing.T) (*exec.Cmd, string, *bufio.Scanner) {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT=0", "SHOAL_INSTANCE=hello-7", "HELLO_ALLOC_MB=4")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		sc := bufio.NewScanner(stdout)
		listening := regexp.MustCompile(`^hello v9 \(instance hello-7\) listening on .*:(\d+)$`)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				return cmd, "http://127.0.0.1:" + m[1], sc
			}
		}
		t.Fatalf("no start line on stdout (scan error %v)", sc.Err())
		return nil, "", nil
	}
	get := func(t *testing.T, url string) string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: reading body: %v", url, err)
		}
		return string(b)
	}
	host, _ := os.Hostname()

	t.Run("serve and SIGTERM", func(t *testing.T) {
		cmd, base, sc := start(t)
		if got, want := get(t, base+"/"), "hello v9 from hello-7 on "+host+"\n"; got != want {
			t.Errorf("GET / = %q, want %q", got, want)
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "GET / from 127.0.0.1:") {
			t.Errorf("request log line = %q, want %q", sc.Text(), "GET / from 127.0.0.1:PORT")
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("after SIGTERM: %v, want exit code 0", err)
		}
	})

	t.Run("crash exits 3", func(t *testing.T) {
		cmd, base, _ := start(t)
		if got := get(t, base+"/crash"); got != "crashing with exit code 3\n" {
			t.Errorf("GET /crash = %q", got)
		}
		var exit *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Errorf("after /crash: %v, want exit code 3", err)
		}
	})
}
