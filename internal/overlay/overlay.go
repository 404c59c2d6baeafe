package overlay

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ipt "github.com/shoal-dev/shoal/internal/iptables"
	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// DefaultPort is WireGuard's usual UDP port.
const DefaultPort = 51820

// DefaultMTU leaves room for WireGuard's 80 bytes of headers (IPv6 outer
// header included) inside a 1500-byte link.
const DefaultMTU = 1420

// Keepalive is how often a node sends a keepalive to the peers it can
// dial, so that a NAT in front of it keeps the path open for their
// answers and their own packets.
const Keepalive = 15 * time.Second

// Key is a Curve25519 key.
type Key [32]byte

// NewKey makes a private key.
func NewKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	// Clamp as Curve25519 private keys are.
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// Public is the public key of private key k.
func (k Key) Public() Key {
	var p Key
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		panic(err) // only for a low-order point, which a basepoint product never is
	}
	copy(p[:], pub)
	return p
}

// String is the key in base64, as WireGuard's tools print it.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero says whether k is unset.
func (k Key) IsZero() bool { return k == Key{} }

// ParseKey reads a base64 key.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%q is not a WireGuard key (32 bytes in base64)", s)
	}
	copy(k[:], b)
	return k, nil
}

// LoadOrCreateKey reads the private key kept in path, making it first if
// there is none.
func LoadOrCreateKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return ParseKey(string(b))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, err
	}
	k, err := NewKey()
	if err != nil {
		return k, err
	}
	return k, SaveKey(path, k)
}

// SaveKey writes private key k to path, readable by its owner only.
func SaveKey(path string, k Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(k.String()+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Peer is another node as the device sees it.
type Peer struct {
	PublicKey Key
	// Endpoint is where the peer's device listens; zero when it cannot
	// be dialled (it is behind NAT and dials this node instead).
	Endpoint netip.AddrPort
	// AllowedIPs are the addresses the peer sends from and is sent
	// traffic for.
	AllowedIPs []netip.Prefix
	// Keepalive, when set, sends the peer a keepalive this often.
	Keepalive time.Duration
}

func (p Peer) equal(o Peer) bool {
	return p.PublicKey == o.PublicKey && p.Endpoint == o.Endpoint && p.Keepalive == o.Keepalive && slices.Equal(p.AllowedIPs, o.AllowedIPs)
}

// Config opens a Device.
type Config struct {
	// Name is the network interface's name (at most 15 bytes).
	Name string
	// Port is the UDP port to listen on; 0 takes any free one.
	Port int
	// PrivateKey is the node's key.
	PrivateKey Key
	// Address is the device's own address: the node's gateway address in
	// its container subnet, so that what the node itself sends through
	// the overlay (and what it masquerades) has a source its peers allow.
	Address netip.Addr
	// MTU defaults to DefaultMTU.
	MTU int
	Log *slog.Logger
}

// Device is a node's WireGuard device.
type Device struct {
	cfg  Config
	tun  tun.Device
	dev  *device.Device
	port int

	mu    sync.Mutex
	peers map[Key]Peer // as last configured
}

// Open creates the TUN device, starts WireGuard on it, gives it its
// address and brings it up. Close removes it.
func Open(cfg Config) (*Device, error) {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if len(cfg.Name) == 0 || len(cfg.Name) > 15 {
		return nil, fmt.Errorf("overlay device name %q: want 1 to 15 bytes", cfg.Name)
	}
	if !cfg.Address.Is4() {
		return nil, fmt.Errorf("overlay device address %v: want an IPv4 address", cfg.Address)
	}
	t, err := tun.CreateTUN(cfg.Name, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("create TUN device %s (is /dev/net/tun there?): %w", cfg.Name, err)
	}
	log := cfg.Log.With("overlay", cfg.Name)
	logger := &device.Logger{
		Verbosef: func(string, ...any) {},
		Errorf:   func(f string, args ...any) { log.Debug("wireguard: " + fmt.Sprintf(f, args...)) },
	}
	d := &Device{cfg: cfg, tun: t, dev: device.NewDevice(t, conn.NewDefaultBind(), logger), peers: map[Key]Peer{}}
	fail := func(err error) (*Device, error) {
		d.Close()
		return nil, err
	}
	if err := d.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", hex.EncodeToString(cfg.PrivateKey[:]), cfg.Port)); err != nil {
		return fail(fmt.Errorf("configure %s (UDP port %d): %w", cfg.Name, cfg.Port, err))
	}
	if err := d.dev.Up(); err != nil {
		return fail(fmt.Errorf("start %s: %w", cfg.Name, err))
	}
	if d.port, err = d.listenPort(); err != nil {
		return fail(err)
	}
	if err := ip("addr", "replace", cfg.Address.String()+"/32", "dev", cfg.Name); err != nil {
		return fail(err)
	}
	if err := ip("link", "set", "dev", cfg.Name, "up"); err != nil {
		return fail(err)
	}
	if err := iptables("-C", "-A", masqRule(cfg.Name, cfg.Address)); err != nil {
		return fail(err)
	}
	return d, nil
}

// masqRule masquerades what the node itself sends into the overlay from
// another of its addresses (a connection to a service address, made
// before the proxy chose an endpoint on another node): its peers accept
// only the node's own address. What the node forwards (a relay's) keeps
// its source.
func masqRule(dev string, addr netip.Addr) []string {
	return []string{"POSTROUTING", "-o", dev, "-m", "addrtype", "--src-type", "LOCAL", "!", "-s", addr.String() + "/32",
		"-m", "comment", "--comment", "shoal overlay " + dev, "-j", "MASQUERADE"}
}

// iptables runs `iptables -t nat CHECK RULE` and, when that fails,
// `iptables -t nat ACT RULE`.
func iptables(check, act string, rule []string) error {
	if exec.Command("iptables", append([]string{"-w", "-t", "nat", check}, rule...)...).Run() == nil {
		return nil
	}
	out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat", act}, rule...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables -t nat %s %s: %v: %s", act, strings.Join(rule, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Reset removes what Open made outside the device for the device named
// dev (its masquerade rule), after its agent stopped: `shoal node reset`.
func Reset(dev string) error {
	out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return fmt.Errorf("list the nat table: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, `"shoal overlay `+dev+`"`) || !strings.HasPrefix(l, "-A ") {
			continue
		}
		rule := ipt.SplitRule(strings.TrimPrefix(l, "-A "))
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat", "-D"}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("remove %s: %v: %s", l, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Name is the device's interface name.
func (d *Device) Name() string { return d.cfg.Name }

// Port is the UDP port the device listens on.
func (d *Device) Port() int { return d.port }

// PublicKey is the device's public key.
func (d *Device) PublicKey() Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.PrivateKey.Public()
}

func (d *Device) listenPort() (int, error) {
	s, err := d.dev.IpcGet()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "listen_port="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("wireguard device reports no listen port")
}

// SetPrivateKey replaces the device's key (a rotation). Peers accept it
// once they have the new public key.
func (d *Device) SetPrivateKey(k Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dev.IpcSet("private_key=" + hex.EncodeToString(k[:]) + "\n"); err != nil {
		return err
	}
	d.cfg.PrivateKey = k
	return nil
}

// SetPeers makes the device's peers exactly peers. Peers whose settings
// did not change are left alone, so their sessions (and the endpoints
// they roamed to) stay.
func (d *Device) SetPeers(peers []Peer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	want := map[Key]Peer{}
	for _, p := range peers {
		want[p.PublicKey] = p
		if old, ok := d.peers[p.PublicKey]; ok && old.equal(p) {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(p.PublicKey[:]))
		if p.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(p.Keepalive/time.Second))
		b.WriteString("replace_allowed_ips=true\n")
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	for k := range d.peers {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", hex.EncodeToString(k[:]))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		// What was applied before the error is unknown: forget it all,
		// so the next call sets every peer again.
		d.peers = map[Key]Peer{}
		return fmt.Errorf("configure %s's peers: %w", d.cfg.Name, err)
	}
	d.peers = want
	return nil
}

// Stats are what a peer sent and received, and when its last handshake
// was.
type Stats struct {
	RxBytes, TxBytes int64
	LastHandshake    time.Time
	Endpoint         string
}

// Stats returns each peer's counters.
func (d *Device) Stats() (map[Key]Stats, error) {
	s, err := d.dev.IpcGet()
	if err != nil {
		return nil, err
	}
	out := map[Key]Stats{}
	var cur *Key
	var st Stats
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				st.LastHandshake = time.Unix(sec, nsec)
			}
			out[*cur] = st
		}
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			flush()
			var pk Key
			if b, err := hex.DecodeString(v); err == nil && len(b) == 32 {
				copy(pk[:], b)
			}
			cur, st, sec, nsec = &pk, Stats{}, 0, 0
		case "rx_bytes":
			st.RxBytes, _ = strconv.ParseInt(v, 10, 64)
		case "tx_bytes":
			st.TxBytes, _ = strconv.ParseInt(v, 10, 64)
		case "endpoint":
			st.Endpoint = v
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	flush()
	return out, nil
}

// Close stops WireGuard and removes the device (and with it its routes).
func (d *Device) Close() {
	d.dev.Close() // closes the TUN device too
	_ = Reset(d.cfg.Name)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Address is the device's own address.
func (d *Device) Address() netip.Addr { return d.cfg.Address }
