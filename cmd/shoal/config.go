package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
)

// defaultDataDir is where `shoal up` keeps its state unless told otherwise.
const defaultDataDir = "/var/lib/shoal"

func defaultConfigPaths() []string {
	var out []string
	if home, err := os.UserHomeDir(); err == nil {
		out = append(out, filepath.Join(home, ".shoal", "config"))
	}
	return append(out, filepath.Join(defaultDataDir, "admin.conf"))
}

// serverURL finds the server: --server, else --config, else $SHOAL_CONFIG,
// else the default config paths.
func (g *globals) serverURL() (string, error) {
	if g.server != "" {
		return g.server, nil
	}
	paths := []string{g.config}
	if g.config == "" {
		paths = nil
		if env := os.Getenv("SHOAL_CONFIG"); env != "" {
			paths = []string{env}
		} else {
			paths = defaultConfigPaths()
		}
	}
	for _, p := range paths {
		cfg, err := client.ReadConfig(p)
		if err == nil {
			return cfg.Server, nil
		}
		if !errors.Is(err, os.ErrNotExist) || len(paths) == 1 {
			return "", err
		}
	}
	return "", fmt.Errorf("no shoal server configured: pass --server URL or --config FILE (looked in %v); `shoal up` writes DATA_DIR/admin.conf", paths)
}

// client returns an API client, after checking that the server answers so
// that every verb fails the same clear way when it does not.
func (g *globals) client(ctx context.Context) (*client.Client, error) {
	u, err := g.serverURL()
	if err != nil {
		return nil, err
	}
	c := client.New(u)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("the shoal server at %s is unhealthy: %v", u, ae.Message)
		}
		return nil, err
	}
	return c, nil
}

func printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
