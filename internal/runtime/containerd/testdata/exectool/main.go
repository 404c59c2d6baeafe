// Command exectool is what the Exec tests run in containers. It is built
// statically by the test and packed into an image.
//
//	exectool sleep        sleeps an hour (the container's own process)
//	exectool exit N       writes a line to stdout and one to stderr, exits N
//	exectool spew BYTES   writes BYTES bytes to stdout, exits 0
//	exectool where        prints its working directory and $GREETING
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: exectool sleep|exit N|spew BYTES|cat|where")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sleep":
		time.Sleep(time.Hour)
	case "exit":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(atoi(arg(2)))
	case "spew":
		w := bufio.NewWriter(os.Stdout)
		for i := range atoi(arg(2)) {
			w.WriteByte('a' + byte(i%26))
		}
		w.Flush()
	case "cat":
		io.Copy(os.Stdout, os.Stdin)
	case "where":
		cwd, _ := os.Getwd()
		fmt.Printf("cwd=%s greeting=%s\n", cwd, os.Getenv("GREETING"))
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
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
