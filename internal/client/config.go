package client

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Config is a client config file (admin.conf): which server to talk to.
type Config struct {
	Server string `json:"server"`
}

// WriteConfig writes cfg to path (0600), replacing it atomically.
func WriteConfig(path string, cfg Config) error {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadConfig reads a client config file.
func ReadConfig(path string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if cfg.Server == "" {
		return cfg, fmt.Errorf("config %s names no server", path)
	}
	return cfg, nil
}
