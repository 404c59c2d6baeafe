// Command app is the process the driver tests run in containers. It is
// built statically by the test and packed into an image.
//
//	app [serve]        HTTP on $PORT: / says hello, /info reports the process,
//	                   /exit?code=N exits; SIGTERM exits 0 after a log line
//	app alloc MIB      allocates and touches MIB mebibytes, then sleeps
//	app spam LINES     writes LINES 100-byte lines to stdout, then serves
//	app stubborn       ignores SIGTERM and sleeps
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "serve":
		serve()
	case "alloc":
		alloc(atoi(arg(2)))
	case "spam":
		line := strings.Repeat("x", 90)
		for i := range atoi(arg(2)) {
			fmt.Printf("%08d %s\n", i, line)
		}
		serve()
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		os.Exit(2)
	}
}

func serve() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	host, _ := os.Hostname()
	fmt.Printf("starting on %s:%s\n", host, port)
	fmt.Fprintln(os.Stderr, "stderr works")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("got SIGTERM, exiting")
		os.Exit(0)
	}()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	http.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		_ = json.NewEncoder(w).Encode(map[string]any{
			"hostname": host,
			"args":     os.Args,
			"env":      os.Environ(),
			"cwd":      cwd,
			"uid":      os.Getuid(),
		})
	})
	http.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code := atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "bye")
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(code)
		}()
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func alloc(mib int) {
	var keep [][]byte
	for i := range mib {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		keep = append(keep, b)
		fmt.Printf("allocated %d MiB\n", i+1)
	}
	fmt.Println("done allocating", len(keep))
	time.Sleep(time.Hour)
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
