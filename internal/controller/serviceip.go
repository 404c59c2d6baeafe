package controller

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/shoal-dev/shoal/internal/api"
)

// DefaultServiceCIDR is where Apps' stable virtual addresses come from.
const DefaultServiceCIDR = "10.96.0.0/16"

const serviceIPClaims = "serviceips/"

// hasPorts says whether an App gets a service address.
func hasPorts(app *api.App) bool { return len(app.Spec.Ports) > 0 }

// ensureServiceIP gives an App with ports a stable virtual address, claimed
// in the store so that no two Apps ever share one. It is kept for the
// App's life, whatever its instances do.
func (c *Apps) ensureServiceIP(ctx context.Context, app *api.App) (string, error) {
	owner := app.Metadata.Namespace + "/" + app.Metadata.Name + "/" + app.Metadata.UID
	if ip := app.Status.ServiceIP; ip != "" || !hasPorts(app) {
		return ip, nil
	}
	prefix, err := netip.ParsePrefix(c.serviceCIDR())
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", c.serviceCIDR(), err)
	}
	used, err := c.Store.Claims(ctx, serviceIPClaims)
	if err != nil {
		return "", err
	}
	for ip, o := range used {
		if o == owner {
			return ip, nil // claimed before a crash, not yet recorded
		}
	}
	// Skip the network address and .1, often a gateway.
	for ip := prefix.Addr().Next().Next(); prefix.Contains(ip); ip = ip.Next() {
		if _, taken := used[ip.String()]; taken {
			continue
		}
		ok, err := c.Store.Claim(ctx, serviceIPClaims+ip.String(), owner)
		if err != nil {
			return "", err
		}
		if ok {
			return ip.String(), nil
		}
	}
	return "", fmt.Errorf("service CIDR %s is exhausted", prefix)
}

// releaseServiceIPs frees the addresses of an App that is gone.
func (c *Apps) releaseServiceIPs(ctx context.Context, ns, name string) error {
	used, err := c.Store.Claims(ctx, serviceIPClaims)
	if err != nil {
		return err
	}
	for ip, owner := range used {
		if len(owner) > len(ns)+len(name)+2 && owner[:len(ns)+len(name)+2] == ns+"/"+name+"/" {
			if err := c.Store.Unclaim(ctx, serviceIPClaims+ip, owner); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Apps) serviceCIDR() string {
	if c.ServiceCIDR != "" {
		return c.ServiceCIDR
	}
	return DefaultServiceCIDR
}
