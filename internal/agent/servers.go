package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
)

// serversFile keeps, in the agent's data dir, the servers it last knew,
// so that after a restart it can reach the cluster through any of them.
const serversFile = "servers.json"

// serversRefresh is how often the agent asks which servers there are.
const serversRefresh = 15 * time.Second

// FollowServers keeps c's list of servers to fail over to current, and
// kept on disk, until ctx ends: the server the agent was started with may
// go away, and others may join.
func FollowServers(ctx context.Context, c *client.Client, dataDir string, log *slog.Logger) {
	path := filepath.Join(dataDir, serversFile)
	var last []string
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &last) == nil {
		c.SetServers(last)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		list, err := c.ListServers(rctx)
		cancel()
		if err == nil {
			var urls []string
			for _, s := range list.Items {
				if s.URL != "" && s.Status == "Ready" {
					urls = append(urls, s.URL)
				}
			}
			if len(urls) > 0 && !slices.Equal(urls, last) {
				last = urls
				c.SetServers(urls)
				b, _ := json.Marshal(urls)
				tmp := path + ".tmp"
				if err := os.WriteFile(tmp, b, 0o600); err == nil {
					_ = os.Rename(tmp, path)
				}
				log.Debug("servers", "urls", urls)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(serversRefresh):
		}
	}
}
