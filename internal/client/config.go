package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is a client config file (admin.conf): which server to talk to.
type Config struct {
	Server string `json:"server"`
	// Servers are the cluster's other servers, tried in turn when Server
	// cannot be reached.
	Servers []string `json:"servers,omitempty"`
	// CA, Certificate and Key (PEM) are the cluster's CA and the
	// credential the client presents.
	CA          string `json:"ca,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
	// Token is a user's bearer token, for a client without a
	// certificate (service accounts): `shoal token create --user NAME`.
	Token string `json:"token,omitempty"`
}

// TLS is the client TLS config the file describes: TLS 1.3, trusting its
// CA only and presenting its certificate. Nil for a config without a CA.
func (c Config) TLS() (*tls.Config, error) {
	if c.CA == "" {
		if strings.HasPrefix(c.Server, "https://") {
			return nil, fmt.Errorf("the config names an https server but holds no CA")
		}
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, fmt.Errorf("the config's ca is not a PEM certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if c.Certificate != "" || c.Key != "" {
		kp, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
		if err != nil {
			return nil, fmt.Errorf("the config's certificate and key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
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
