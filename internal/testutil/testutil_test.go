package testutil

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending it.
type recorder struct {
	testing.TB
	ended string // "fatal: ..." or "skip: ..."
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) { r.ended = "fatal: " + fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Skip(args ...any)  { r.ended = "skip: " + fmt.Sprint(args...); runtime.Goexit() }

// run calls f with a recorder, as a test body, and says how it ended
// ("" if it returned).
func run(f func(t testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.ended
}

func TestEventually(t *testing.T) {
	calls := 0
	if got := run(func(t testing.TB) {
		Eventually(t, 5*time.Second, "the third call", func() (bool, string) {
			calls++
			return calls == 3, fmt.Sprint(calls)
		})
	}); got != "" || calls != 3 {
		t.Fatalf("a condition true at its third call: ended %q after %d calls, want to return after 3", got, calls)
	}
	got := run(func(t testing.TB) {
		Eventually(t, 100*time.Millisecond, "a miracle", func() (bool, string) { return false, "nothing yet" })
	})
	if want := "fatal: after 100ms: want a miracle; last seen: nothing yet"; got != want {
		t.Fatalf("a condition never true: ended %q, want %q", got, want)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("FreePort = %d, but listening on it: %v", p, err)
	}
	l.Close()
	if got := run(func(t testing.TB) { FreePortOn(t, "not-an-address") }); !strings.HasPrefix(got, "fatal: a free port on not-an-address: ") {
		t.Fatalf("FreePortOn a bad host ended %q, want a failure naming the host", got)
	}
}

func TestUnavailable(t *testing.T) {
	if testing.Short() {
		// Under -short every case is a skip; the cases below are about
		// the other runs.
		if got := run(func(t testing.TB) { Unavailable(t, "no %s", "tool") }); got != "skip: -short: no tool" {
			t.Fatalf("under -short: ended %q, want a skip", got)
		}
		return
	}
	t.Setenv("CI", "")
	if got := run(func(t testing.TB) { Unavailable(t, "no %s", "tool") }); got != "skip: no tool" {
		t.Fatalf("outside CI: ended %q, want skip: no tool", got)
	}
	t.Setenv("CI", "true")
	if got := run(func(t testing.TB) { Unavailable(t, "no %s", "tool") }); got != "fatal: no tool" {
		t.Fatalf("under CI=true: ended %q, want fatal: no tool", got)
	}
	got := run(func(t testing.TB) { RequireRoot(t, "makes namespaces") })
	if os.Geteuid() == 0 {
		if got != "" {
			t.Fatalf("RequireRoot as root ended %q, want it to return", got)
		}
	} else if got != "fatal: needs root: makes namespaces" {
		t.Fatalf("RequireRoot without root under CI=true ended %q, want fatal: needs root: makes namespaces", got)
	}
}
