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

// clientConfig finds the server and the credentials: --config, else
// $SHOAL_CONFIG, else the default config paths; --server overrides the
// file's server (and alone, with no file, names a server without
// credentials).
func (g *globals) clientConfig() (client.Config, error) {
	paths := []string{g.config}
	if g.config == "" {
		if env := os.Getenv("SHOAL_CONFIG"); env != "" {
			paths = []string{env}
		} else {
			paths = defaultConfigPaths()
		}
	}
	for _, p := range paths {
		cfg, err := client.ReadConfig(p)
		if err == nil {
			if g.server != "" {
				cfg.Server = g.server
			}
			return cfg, nil
		}
		if !errors.Is(err, os.ErrNotExist) || (len(paths) == 1 && g.server == "") {
			return client.Config{}, err
		}
	}
	if g.server != "" {
		return client.Config{Server: g.server}, nil
	}
	return client.Config{}, fmt.Errorf("no shoal server configured: pass --config FILE (looked in %v); `shoal up` writes DATA_DIR/admin.conf", paths)
}

// serverURL is the configured server's URL.
func (g *globals) serverURL() (string, error) {
	cfg, err := g.clientConfig()
	return cfg.Server, err
}

// client returns an API client, after checking that the server answers so
// that every verb fails the same clear way when it does not.
func (g *globals) client(ctx context.Context) (*client.Client, error) {
	cfg, err := g.clientConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("the shoal server at %s is unhealthy: %v", cfg.Server, ae.Message)
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
