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
// knows its subnet and keeps its containers where they are.
func Subnet(ctx context.Context, c *client.Client, node string, labels map[string]string, dataDir string) (string, error) {
	cache := filepath.Join(dataDir, "subnet")
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		sn, err := assignedSubnet(ctx, c, node, labels)
		if err == nil && sn != "" {
			if err := os.MkdirAll(dataDir, 0o700); err == nil {
				_ = os.WriteFile(cache, []byte(sn+"\n"), 0o600)
			}
			return sn, nil
		}
		if errors.Is(err, client.ErrUnreachable) {
			if b, rerr := os.ReadFile(cache); rerr == nil {
				return strings.TrimSpace(string(b)), nil
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
