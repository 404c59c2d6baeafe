// Command hello is shoal's example app: a tiny static HTTP server that says
// which version, instance and host answered, so rollouts, load balancing and
// restarts can be watched with curl.
//
//	GET /         "hello VERSION from INSTANCE on HOSTNAME"
//	GET /healthz  200 "ok" (503 until HELLO_READY_DELAY has passed)
//	GET /crash    answers, then exits with code 3 (restart-policy tests)
//
// Run with arguments, it is a tool for `shoal exec` instead of a server:
//
//	hello cat           copies stdin to stdout
//	hello exit N        exits with code N
//	hello work D [N]    says which instance works, sleeps for duration D,
//	                    then exits with code N (default 0): a Job's work
//	hello tty [--wait]  prints "tty COLSxROWS" or "no tty"; --wait first
//	                    waits for a resize (SIGWINCH)
//
// Environment: PORT (default 8080), SHOAL_INSTANCE (set by the agent),
// HELLO_ALLOC_MB (allocate and touch N MiB at start, for OOM tests),
// HELLO_READY_DELAY (a Go duration such as "5s").
//
// Build it static, with the version baked in:
//
//	CGO_ENABLED=0 go build -ldflags "-X main.version=v1" -o hello ./examples/hello
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// version is set at build time with -ldflags "-X main.version=v1".
var version = "dev"

// ballast keeps HELLO_ALLOC_MB's memory reachable for the life of the process.
var ballast []byte

func main() {
	if len(os.Args) > 1 {
		os.Exit(tool(os.Args[1:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run() error {
	port := envOr("PORT", "8080")
	instance := envOr("SHOAL_INSTANCE", "unknown")
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}

	if s := os.Getenv("HELLO_ALLOC_MB"); s != "" {
		mb, err := strconv.Atoi(s)
		if err != nil || mb < 0 {
			return fmt.Errorf("HELLO_ALLOC_MB=%q: want a non-negative integer", s)
		}
		ballast = allocate(mb)
		fmt.Printf("allocated and touched %d MiB\n", mb)
	}

	var readyDelay time.Duration
	if s := os.Getenv("HELLO_READY_DELAY"); s != "" {
		readyDelay, err = time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("HELLO_READY_DELAY=%q: %w", s, err)
		}
	}
	readyAt := time.Now().Add(readyDelay)

	a := &app{instance: instance, host: host, readyAt: readyAt, exit: os.Exit}
	srv := &http.Server{
		Addr:              net.JoinHostPort("", port),
		Handler:           logRequests(a.routes()),
		ReadHeaderTimeout: 10 * time.Second,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	fmt.Printf("hello %s (instance %s) listening on %s\n", version, instance, ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Println("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("bye")
	return nil
}

// app holds what the handlers answer with; exit is os.Exit outside tests.
type app struct {
	instance, host string
	readyAt        time.Time
	unready        atomic.Bool // set by /unready: /healthz fails from then on
	exit           func(code int)
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s from %s on %s\n", version, a.instance, a.host)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(a.readyAt) || a.unready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /unready", func(w http.ResponseWriter, r *http.Request) {
		a.unready.Store(true)
		fmt.Fprintln(w, "/healthz fails from now on")
	})
	mux.HandleFunc("GET /crash", func(w http.ResponseWriter, r *http.Request) {
		// A fixed Content-Length and a flush put the whole answer on the
		// wire before the process dies, so the client sees a clean response.
		const body = "crashing with exit code 3\n"
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte(body))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		fmt.Println("exiting with code 3 on request")
		a.exit(3)
	})
	// /fetch?url=URL gets URL from inside the container and answers with
	// what came back: a way to see service discovery from an app's seat.
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.Query().Get("url")
		if target == "" {
			http.Error(w, "fetch needs ?url=", http.StatusBadRequest)
			return
		}
		cl := &http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get(target)
		if err != nil {
			http.Error(w, "fetch "+target+": "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	})
	return mux
}

func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		next.ServeHTTP(w, r)
	})
}

// allocate returns mb MiB with every page written, so the memory is resident
// and counted against the container's limit rather than merely reserved.
func allocate(mb int) []byte {
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// tool runs one of hello's exec helpers and returns its exit code.
func tool(args []string) int {
	switch args[0] {
	case "cat":
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "hello cat:", err)
			return 1
		}
		return 0
	case "work":
		if len(args) == 2 || len(args) == 3 {
			d, err := time.ParseDuration(args[1])
			code := 0
			if len(args) == 3 {
				code, err = strconv.Atoi(args[2])
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "hello work:", err)
				return 2
			}
			fmt.Printf("%s works for %s\n", envOr("SHOAL_INSTANCE", "unknown"), d)
			time.Sleep(d)
			fmt.Printf("%s done, exit %d\n", envOr("SHOAL_INSTANCE", "unknown"), code)
			return code
		}
	case "show": // a file's content, e.g. /proc/1/status
		if len(args) == 2 {
			b, err := os.ReadFile(args[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, "hello show:", err)
				return 1
			}
			os.Stdout.Write(b)
			return 0
		}
	case "touch": // whether the root filesystem is writable
		if len(args) == 2 {
			if err := os.WriteFile(args[1], nil, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "hello touch:", err)
				return 1
			}
			return 0
		}
	case "stat": // a file's mode, owner and whether it is on tmpfs
		if len(args) == 2 {
			var st syscall.Stat_t
			var fs syscall.Statfs_t
			if err := syscall.Stat(args[1], &st); err != nil {
				fmt.Fprintln(os.Stderr, "hello stat:", err)
				return 1
			}
			if err := syscall.Statfs(args[1], &fs); err != nil {
				fmt.Fprintln(os.Stderr, "hello stat:", err)
				return 1
			}
			fmt.Printf("mode=%04o uid=%d tmpfs=%v\n", st.Mode&0o7777, st.Uid, fs.Type == 0x01021994)
			return 0
		}
	case "id":
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
		return 0
	case "exit":
		if len(args) == 2 {
			if n, err := strconv.Atoi(args[1]); err == nil {
				return n
			}
		}
	case "tty":
		if len(args) == 2 && args[1] == "--wait" {
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			fmt.Println("waiting for a resize")
			select {
			case <-winch:
			case <-time.After(10 * time.Second):
				fmt.Println("no resize within 10s")
				return 1
			}
		}
		var ws struct{ rows, cols, x, y uint16 }
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, 0, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws))); e != 0 {
			fmt.Println("no tty")
			return 0
		}
		fmt.Printf("tty %dx%d\n", ws.cols, ws.rows)
		return 0
	}
	fmt.Fprintln(os.Stderr, "usage: hello [cat | show FILE | stat FILE | touch FILE | id | exit N | tty [--wait]]")
	return 2
}
