package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostsTalkAndCanBeCutOff: a server on one host answers another host
// over the switch; cut off it does not; healed it does again; and nothing
// is left when the test ends (make test checks the host).
func TestHostsTalkAndCanBeCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces)")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/hello").CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	n := New(t)
	a, b := n.AddHost("a"), n.AddHost("b")
	srv := a.Start(bin)
	get := func() (string, error) {
		out, err := b.Command("curl", "-sS", "--max-time", "2", "http://"+a.IP+":8080/").CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := get()
		if err == nil && strings.Contains(out, "hello") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b cannot reach a: %v\n%s\nserver:\n%s", err, out, srv.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.Cut()
	if out, err := get(); err == nil {
		t.Fatalf("b reached a while a was cut off:\n%s", out)
	}
	if !srv.Running() {
		t.Fatal("cutting a host off stopped its process")
	}
	a.Heal()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if out, err := get(); err == nil && strings.Contains(out, "hello") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("b cannot reach a after the heal: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	srv.Kill9()
	if srv.Running() {
		t.Fatal("killed, still running")
	}
	// Nothing of it is visible outside its namespaces.
	if out, _ := exec.Command("ip", "-o", "addr").CombinedOutput(); strings.Contains(string(out), a.IP) {
		t.Errorf("a's address shows on the machine itself:\n%s", out)
	}
}

// TestHostBehindNAT: a host behind NAT reaches the others; they cannot
// reach it.
func TestHostBehindNAT(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces)")
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/hello").CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	n := New(t)
	a, b := n.AddHost("a"), n.AddHostBehindNAT("b")
	a.Start(bin)
	b.Start(bin)
	get := func(from, to *Host) (string, error) {
		out, err := from.Command("curl", "-sS", "--max-time", "1", "http://"+to.IP+":8080/").CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := get(b, a)
		if err == nil && strings.Contains(out, "hello") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b cannot reach a through its router: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := get(b, b); err != nil {
		t.Fatalf("b cannot reach itself: %v\n%s", err, out)
	}
	if out, err := get(a, b); err == nil {
		t.Fatalf("a reached b behind its NAT:\n%s", out)
	}
}
