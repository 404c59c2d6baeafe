package overlay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testutil"
)

func TestKeys(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(k.String())
	if err != nil || back != k {
		t.Fatalf("ParseKey(String()) = %v, %v", back, err)
	}
	if k.Public() == k || k.Public().IsZero() {
		t.Fatal("public key is the private key or zero")
	}
	for _, bad := range []string{"", "abc", "AAAA"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	path := t.TempDir() + "/wg.key"
	a, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(path)
	if err != nil || a != b {
		t.Fatalf("a kept key was not read back: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
}

// netns is a network namespace the test made.
type netns struct {
	t    *testing.T
	name string
}

func newNetns(t *testing.T, name string) *netns {
	t.Helper()
	name = fmt.Sprintf("shov%d-%s", os.Getpid()%10000, name)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return &netns{t, name}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// node is a device opened by a helper process (this test binary) inside a
// namespace, as an agent would: wireguard-go reads the TUN device's MTU
// and state from whatever thread it is on, so one process cannot hold
// devices of two namespaces.
type node struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	key Key
	// port is the device's UDP port.
	port int
}

func (n *netns) open(addr string) *node {
	n.t.Helper()
	k, _ := NewKey()
	cmd := exec.Command("ip", "netns", "exec", n.name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOAL_OVERLAY_HELPER="+k.String()+" "+addr)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	nd := &node{t: n.t, cmd: cmd, in: in, out: bufio.NewScanner(out), key: k}
	n.t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	if _, err := fmt.Sscanf(nd.read(), "port %d", &nd.port); err != nil {
		n.t.Fatal(err)
	}
	return nd
}

func (nd *node) read() string {
	nd.t.Helper()
	if !nd.out.Scan() {
		nd.t.Fatalf("overlay helper ended: %v", nd.out.Err())
	}
	return nd.out.Text()
}

// call sends the helper one command and returns its answer.
func (nd *node) call(verb string, arg any) string {
	nd.t.Helper()
	b, _ := json.Marshal(arg)
	fmt.Fprintf(nd.in, "%s %s\n", verb, b)
	ans := nd.read()
	if strings.HasPrefix(ans, "error ") {
		nd.t.Fatal(ans)
	}
	return ans
}

func TestMain(m *testing.M) {
	if v := os.Getenv("SHOAL_OVERLAY_HELPER"); v != "" {
		os.Exit(helper(v))
	}
	os.Exit(m.Run())
}

// helper runs one device until its stdin closes, taking commands from it.
func helper(v string) int {
	ks, addr, _ := strings.Cut(v, " ")
	k, err := ParseKey(ks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := Open(Config{Name: "shwg", PrivateKey: k, Address: netip.MustParseAddr(addr), Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	fmt.Printf("port %d\n", d.Port())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		var ans any = "ok"
		switch verb {
		case "peers":
			var ps []Peer
			if err = json.Unmarshal([]byte(arg), &ps); err == nil {
				err = d.SetPeers(ps)
			}
		case "key":
			var nk Key
			if err = json.Unmarshal([]byte(arg), &nk); err == nil {
				err = d.SetPrivateKey(nk)
			}
		case "serve":
			var l net.Listener
			if l, err = net.Listen("tcp", strings.Trim(arg, `"`)); err == nil {
				go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from "+addr) }))
			}
		case "sink":
			err = sink(strings.Trim(arg, `"`))
		case "measure":
			var m measureArgs
			if err = json.Unmarshal([]byte(arg), &m); err == nil {
				var r figures
				if r, err = measure(m); err == nil {
					b, _ := json.Marshal(r)
					ans = string(b)
				}
			}
		case "stats":
			var st map[Key]Stats
			if st, err = d.Stats(); err == nil {
				m := map[string]Stats{}
				for k, s := range st {
					m[k.String()] = s
				}
				b, _ := json.Marshal(m)
				ans = string(b)
			}
		}
		if err != nil {
			ans = "error " + err.Error()
		}
		fmt.Println(ans)
	}
	return 0
}

// TestTwoNodesTalkThroughTheOverlay: two namespaces on a veth, each with a
// device; one is "behind NAT" (its peer has no endpoint for it) and is
// reached once its keepalive has told the other where it is. A source
// address the sending peer does not own is dropped.
func TestTwoNodesTalkThroughTheOverlay(t *testing.T) {
	testutil.RequireRoot(t, "")
	a, b := newNetns(t, "a"), newNetns(t, "b")
	veth := fmt.Sprintf("shov%d", os.Getpid()%10000)
	run(t, "ip", "link", "add", veth, "netns", a.name, "type", "veth", "peer", "name", "eth0", "netns", b.name)
	run(t, "ip", "-n", a.name, "link", "set", veth, "name", "eth0")
	run(t, "ip", "-n", a.name, "addr", "add", "10.98.0.1/24", "dev", "eth0")
	run(t, "ip", "-n", b.name, "addr", "add", "10.98.0.2/24", "dev", "eth0")
	run(t, "ip", "-n", a.name, "link", "set", "eth0", "up")
	run(t, "ip", "-n", b.name, "link", "set", "eth0", "up")

	da, db := a.open("10.201.1.1"), b.open("10.201.2.1")
	ka, kb := da.key, db.key
	if da.port == 0 || db.port == 0 {
		t.Fatalf("ports %d and %d", da.port, db.port)
	}

	// a is behind NAT: b has no endpoint for it; a dials b and keeps the
	// path open.
	da.call("peers", []Peer{{PublicKey: kb.Public(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("10.98.0.2"), uint16(db.port)),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.2.0/24")}, Keepalive: time.Second}})
	db.call("peers", []Peer{{PublicKey: ka.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.1.0/24")}}})
	run(t, "ip", "-n", a.name, "route", "add", "10.201.2.0/24", "dev", "shwg", "src", "10.201.1.1")
	run(t, "ip", "-n", b.name, "route", "add", "10.201.1.0/24", "dev", "shwg", "src", "10.201.2.1")
	da.call("serve", "10.201.1.1:8080")
	db.call("serve", "10.201.2.1:8080")
	get := func(from *netns, url string) (string, error) {
		out, err := exec.Command("ip", "netns", "exec", from.name, "curl", "-sS", "--max-time", "2", url).CombinedOutput()
		return string(out), err
	}
	// b → a works once a's keepalive reached b.
	deadline := time.Now().Add(10 * time.Second)
	for out, err := get(b, "http://10.201.1.1:8080/"); out != "hello from 10.201.1.1"; out, err = get(b, "http://10.201.1.1:8080/") {
		if time.Now().After(deadline) {
			t.Fatal("b never reached a through the overlay:", out, err, run(t, "ip", "-n", b.name, "-s", "link", "show", "shwg"), run(t, "ip", "-n", b.name, "route"), run(t, "ip", "-n", a.name, "-s", "link", "show", "shwg"), db.call("stats", nil), da.call("stats", nil))
		}
	}
	if out, err := get(a, "http://10.201.2.1:8080/"); out != "hello from 10.201.2.1" {
		t.Fatalf("a → b: %s %v", out, err)
	}
	var st map[string]Stats
	if err := json.Unmarshal([]byte(db.call("stats", nil)), &st); err != nil {
		t.Fatal(err)
	}
	if s := st[ka.Public().String()]; s.RxBytes == 0 || s.LastHandshake.IsZero() || !strings.HasPrefix(s.Endpoint, "10.98.0.1:") {
		t.Fatalf("b's view of a: %+v", s)
	}

	// Nothing crosses the plain link but WireGuard's UDP: the HTTP
	// connection never shows on eth0 in the clear.
	run(t, "ip", "netns", "exec", b.name, "iptables", "-w", "-I", "INPUT", "-i", "eth0", "-p", "tcp", "-j", "ACCEPT")
	if out, err := get(a, "http://10.201.2.1:8080/"); err != nil {
		t.Fatalf("a → b: %s %v", out, err)
	}
	if out := run(t, "ip", "netns", "exec", b.name, "iptables", "-w", "-nvxL", "INPUT"); !zeroTCP(out) {
		t.Fatalf("TCP seen in the clear on the link:\n%s", out)
	}

	// A peer sending from an address it does not own is dropped: a's
	// key allowed only 10.201.9.0/24 now.
	db.call("peers", []Peer{{PublicKey: ka.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.9.0/24")}}})
	if out, err := get(a, "http://10.201.2.1:8080/"); err == nil {
		t.Fatalf("b answered a packet from a source a does not own: %s", out)
	}

	// A rotated key: b learns a's new public key and they talk again.
	ka2, _ := NewKey()
	da.call("key", ka2)
	db.call("peers", []Peer{{PublicKey: ka2.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.201.1.0/24")}}})
	deadline = time.Now().Add(10 * time.Second)
	for _, err := get(a, "http://10.201.2.1:8080/"); err != nil; _, err = get(a, "http://10.201.2.1:8080/") {
		if time.Now().After(deadline) {
			t.Fatal("no traffic after a's key rotation")
		}
	}
}

// zeroTCP says whether the counting rule in an iptables -nvxL listing
// counted no packet.
func zeroTCP(listing string) bool {
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && (f[3] == "tcp" || f[3] == "6") {
			return f[0] == "0"
		}
	}
	return false
}
