package netproxy

import (
	"context"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/hostnet"
)

// isolationDebounce gathers a burst of membership changes (a rollout
// starting many instances) into one write of the isolation rules.
const isolationDebounce = 200 * time.Millisecond

// isolationWriter keeps the node's isolation rules; hostnet.Tables is the
// only real one.
type isolationWriter interface {
	ApplyIsolation(context.Context, hostnet.IsolationPlan) error
	ResetIsolation(ctx context.Context, bridge string) error
}

// setNamespaceLocked records whether a namespace asked for isolation, and
// says whether that changed.
func (p *Proxy) setNamespaceLocked(ns *api.Namespace, deleted bool) bool {
	name := ns.Metadata.Name
	was := p.isolated[name]
	if !deleted && ns.Spec.Policy.Isolation == api.IsolationNamespace {
		p.isolated[name] = true
	} else {
		delete(p.isolated, name)
	}
	return was != p.isolated[name]
}

// isolationInputLocked is what the isolation plan needs from the view:
// the isolated namespaces and their containers' addresses (those inside
// their node's subnet, of instances not deleted nor ended), the cluster
// range (the servers' --cluster-cidr, or every known node's subnet) and
// the nodes' own addresses. ok is false until Nodes, Instances and
// Namespaces have all been listed: rules from a partial view would cut a
// namespace's members off from each other.
func (p *Proxy) isolationInputLocked() (cfg hostnet.IsolationConfig, ok bool) {
	cfg = hostnet.IsolationConfig{Bridge: p.cfg.Bridge}
	if !p.listed[api.KindNode] || !p.listed[api.KindInstance] || !p.listed[api.KindNamespace] {
		return cfg, false
	}
	if p.cfg.ClusterCIDR.IsValid() {
		cfg.Cluster = []netip.Prefix{p.cfg.ClusterCIDR.Masked()}
	}
	for _, name := range slices.Sorted(maps.Keys(p.subnets)) {
		sn := p.subnets[name]
		if !p.cfg.ClusterCIDR.IsValid() {
			cfg.Cluster = append(cfg.Cluster, sn)
		} else if !p.cfg.ClusterCIDR.Contains(sn.Addr()) {
			continue // agents route no such subnet
		}
		cfg.Nodes = append(cfg.Nodes, sn.Addr().Next())
	}
	if len(p.isolated) == 0 {
		return cfg, true
	}
	cfg.Isolated = map[string][]netip.Addr{}
	for ns := range p.isolated {
		cfg.Isolated[ns] = nil
	}
	for _, in := range p.insts {
		if _, isolated := cfg.Isolated[in.Metadata.Namespace]; !isolated || !in.Metadata.DeletedAt.IsZero() || in.Status.Phase.Terminal() {
			continue
		}
		if ip, ok := p.instanceIPLocked(in); ok {
			cfg.Isolated[in.Metadata.Namespace] = append(cfg.Isolated[in.Metadata.Namespace], ip)
		}
	}
	return cfg, true
}

// isolationLoop writes the isolation rules whenever the view changes
// (debounced), and removes them when ctx ends.
func (p *Proxy) isolationLoop(ctx context.Context) {
	var written []string // the plan's lines as last written
	warned := false
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := p.iso.ResetIsolation(cctx, p.cfg.Bridge); err != nil {
				p.log.Error("remove isolation rules", "err", err)
			}
			cancel()
			return
		case <-p.isoKick:
			select {
			case <-ctx.Done():
				continue
			case <-time.After(isolationDebounce):
			}
		case <-t.C: // retries a failed write
		}
		p.mu.Lock()
		cfg, ok := p.isolationInputLocked()
		p.mu.Unlock()
		if !ok {
			continue
		}
		plan, err := hostnet.PlanIsolation(cfg)
		if err != nil {
			p.log.Error("isolation rules", "err", err)
			continue
		}
		lines := plan.Lines()
		if written != nil && slices.Equal(lines, written) {
			continue
		}
		if err := p.iso.ApplyIsolation(ctx, plan); err != nil {
			p.log.Error("isolation rules", "err", err)
			continue
		}
		written = lines
		p.log.Debug("isolation rules written", "namespaces", len(cfg.Isolated))
		if len(cfg.Isolated) > 0 && !warned && !bridgeFiltered() {
			warned = true
			p.log.Warn("net.bridge.bridge-nf-call-iptables is not 1: containers of an isolated namespace are not separated from other namespaces' on this node's bridge (other nodes' are); run `modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1`")
		}
	}
}

// bridgeFiltered says whether packets between two ports of a bridge pass
// through iptables (br_netfilter loaded and enabled).
func bridgeFiltered() bool {
	b, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (p *Proxy) pokeIsolation() {
	select {
	case p.isoKick <- struct{}{}:
	default:
	}
}

// isolatedFrom says whether a connection from the address from to a
// service or published port of namespace ns crosses an isolation: the
// proxy itself dials the endpoint (no endpoint ready, proxy mode), so the
// kernel's rules never see the client and the endpoint together. A
// client that is not a container of the cluster (a published port's) is
// never refused.
func (p *Proxy) isolatedFrom(from netip.Addr, ns string) bool {
	src, ok := p.table.Load().nsOfIP[from.Unmap()]
	if !ok || src == ns {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.isolated[src] || p.isolated[ns]
}
