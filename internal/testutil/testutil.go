package testutil

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// Poll is how often Eventually asks its condition again.
const Poll = 50 * time.Millisecond

// Eventually asks cond every Poll until it holds, and fails t once timeout
// has passed, saying what it waited for and what cond last reported seeing.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	EventuallyEvery(t, timeout, Poll, what, cond)
}

// EventuallyEvery is Eventually asking every interval, for conditions that
// cost something to ask (a CLI run, a request to a busy server).
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: want %s; last seen: %s", timeout, what, seen)
		}
		time.Sleep(interval)
	}
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortOn(t, "127.0.0.1")
}

// FreePortOn returns a TCP port that was free on the IPv4 address host a
// moment ago ("0.0.0.0": on every address).
func FreePortOn(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp4", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("a free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RequireRoot lets t go on only as root and without -short (tests that
// need root are not unit tests); otherwise it is Unavailable. why, if
// given, says what the test does with root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	msg := "needs root"
	if why != "" {
		msg += ": " + why
	}
	if testing.Short() || os.Geteuid() != 0 {
		Unavailable(t, "%s", msg)
	}
}

// Unavailable ends a test that cannot run here: skipped, but under
// CI=true, where everything a test needs is meant to be there, failed.
// Under -short it is always skipped.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if testing.Short() {
		t.Skip("-short: " + msg)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
