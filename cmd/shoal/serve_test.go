package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/pki"
)

func TestParseReserve(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want api.NodeResources
		err  string
	}{
		{"nothing", nil, api.NodeResources{}, ""},
		{"both", map[string]string{"cpu": "500m", "memory": "1Gi"}, api.NodeResources{MilliCPU: 500, MemoryBytes: 1 << 30}, ""},
		{"cores", map[string]string{"cpu": "2"}, api.NodeResources{MilliCPU: 2000}, ""},
		{"an unknown resource", map[string]string{"disk": "10Gi"}, api.NodeResources{}, "--reserve disk=10Gi: reserve cpu or memory"},
		{"a bad cpu", map[string]string{"cpu": "lots"}, api.NodeResources{}, "--reserve cpu=lots: "},
		{"a bad memory", map[string]string{"memory": "1 GB"}, api.NodeResources{}, "--reserve memory=1 GB: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseReserve(tc.in)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("parseReserve(%v) = %v, %v; want an error starting %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseReserve(%v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestOwnerPolicy: the node owner's --allow-* and --require-signed-by
// flags become the agent's policy; a bad one is refused naming the flag
// and the value.
func TestOwnerPolicy(t *testing.T) {
	priv, err := pki.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	key := pki.VerifyKeyString(priv.Public().(ed25519.PublicKey))
	pubFile := filepath.Join(t.TempDir(), "owner.pub")
	if err := os.WriteFile(pubFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badPub := filepath.Join(t.TempDir(), "bad.pub")
	if err := os.WriteFile(badPub, []byte("ssh-ed25519 AAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	o := agentOptions{
		allowNamespaces: []string{"shop"}, allowRegistries: []string{"shoal.local"},
		allowCaps: []string{"net_admin", "CAP_SYS_TIME"}, allowHostPaths: []string{"/srv/data"},
		requireSignedBy: []string{key, pubFile}, portRange: "31000-31999",
	}
	p, err := o.ownerPolicy()
	if err != nil {
		t.Fatalf("ownerPolicy: %v", err)
	}
	if !reflect.DeepEqual(p.AllowCapabilities, []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}) {
		t.Errorf("capabilities %v, want CAP_NET_ADMIN and CAP_SYS_TIME", p.AllowCapabilities)
	}
	if !reflect.DeepEqual(p.RequireSignedBy, []string{key, key}) {
		t.Errorf("signers %v, want the inline key and the file's, both as ed25519:…", p.RequireSignedBy)
	}
	if p.PortRange != (api.PortRange{Min: 31000, Max: 31999}) || !reflect.DeepEqual(p.AllowHostPaths, []string{"/srv/data"}) ||
		!reflect.DeepEqual(p.AllowNamespaces, []string{"shop"}) || !reflect.DeepEqual(p.AllowRegistries, []string{"shoal.local"}) {
		t.Errorf("policy %+v, want the flags as given", p)
	}
	if p, err := (&agentOptions{}).ownerPolicy(); err != nil || p.PortRange != api.DefaultPortRange {
		t.Errorf("no flags: %+v, %v; want the default port range %v", p.PortRange, err, api.DefaultPortRange)
	}

	for _, tc := range []struct {
		name string
		o    agentOptions
		want string
	}{
		{"an unknown capability", agentOptions{allowCaps: []string{"NET_MAGIC"}}, "--allow-capabilities NET_MAGIC: not a Linux capability"},
		{"a bad port range", agentOptions{portRange: "32000-31000"}, "--port-range: "},
		{"a relative host path", agentOptions{allowHostPaths: []string{"srv"}}, "--allow-host-paths srv: want a clean absolute path"},
		{"an unclean host path", agentOptions{allowHostPaths: []string{"/srv/../etc"}}, "--allow-host-paths /srv/../etc: want a clean absolute path"},
		{"a signer that is no key nor file", agentOptions{requireSignedBy: []string{"/no/such.pub"}}, "--require-signed-by /no/such.pub: neither ed25519:… nor a readable file"},
		{"a file that holds no key", agentOptions{requireSignedBy: []string{badPub}}, "--require-signed-by: public key"},
		{"a malformed inline key", agentOptions{requireSignedBy: []string{"ed25519:short"}}, "--require-signed-by: public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.o.ownerPolicy(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("ownerPolicy: %v; want an error starting %q", err, tc.want)
			}
		})
	}
}
