package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
)

// Subnet returns the container subnet the server assigned to node,
// registering the node first if it is new. It keeps the answer in
// dataDir, so that an agent restarted while the server is away still
// knows its subnet and keeps its containers where they are. declared is
// the subnet the agent was told to use (--subnet; "" for none): it must be
// the node's, which never changes once set.
func Subnet(ctx context.Context, c *client.Client, node string, labels map[string]string, dataDir, declared string) (string, error) {
	cache := filepath.Join(dataDir, "subnet")
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		sn, err := assignedSubnet(ctx, c, node, labels)
		if err == nil && sn != "" {
			if err := os.MkdirAll(dataDir, 0o700); err == nil {
				_ = os.WriteFile(cache, []byte(sn+"\n"), 0o600)
			}
			return sameSubnet(node, sn, declared)
		}
		if errors.Is(err, client.ErrUnreachable) {
			if b, rerr := os.ReadFile(cache); rerr == nil {
				return sameSubnet(node, strings.TrimSpace(string(b)), declared)
			}
			if declared != "" {
				return declared, nil // as it joined with; peers check it
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("the server has not assigned one yet")
			}
			return "", fmt.Errorf("container subnet of node %s: %w (or give --subnet)", node, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func sameSubnet(node, assigned, declared string) (string, error) {
	if declared != "" && declared != assigned {
		return "", fmt.Errorf("--subnet %s: node %s has subnet %s, and a node's subnet never changes once set: give --subnet %s or none, or remove the node (shoal node remove %s) and join it again", declared, node, assigned, assigned, node)
	}
	return assigned, nil
}

func assignedSubnet(ctx context.Context, c *client.Client, name string, labels map[string]string) (string, error) {
	obj, err := c.Get(ctx, nodeKind, "", name)
	if errors.Is(err, client.ErrNotFound) {
		n := &api.Node{
			TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNode},
			Metadata: api.ObjectMeta{Name: name, Labels: labels},
		}
		if err := c.Create(ctx, n); err != nil && !errors.Is(err, client.ErrConflict) {
			return "", err
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return obj.(*api.Node).Spec.Subnet, nil
}
