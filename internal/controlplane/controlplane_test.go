package controlplane_test

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/client"
	"github.com/shoal-dev/shoal/internal/controlplane"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*controlplane.Config)
		want   string
	}{
		{"defaults", func(*controlplane.Config) {}, ""},
		{"no data dir", func(c *controlplane.Config) { c.DataDir = "" }, "data dir: required"},
		{"bad listen", func(c *controlplane.Config) { c.Listen = "7070" }, `listen "7070"`},
		{"bad service CIDR", func(c *controlplane.Config) { c.ServiceCIDR = "10.96.0.0" }, `service CIDR "10.96.0.0": want an IPv4 CIDR`},
		{"lost before not ready", func(c *controlplane.Config) { c.Nodes.LostAfter = time.Second }, "want 0 < lease timeout <= lost-after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := controlplane.NewConfig()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// Start brings a server up on an embedded etcd: it answers, writes
// admin.conf, holds its data dir against a second server, and Wait
// returns once its context ends.
func TestStartAndWait(t *testing.T) {
	cfg := controlplane.NewConfig()
	cfg.DataDir, cfg.Listen, cfg.Log = t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := controlplane.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	<-srv.Ready()
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	conf, err := client.ReadConfig(filepath.Join(cfg.DataDir, "admin.conf"))
	if err != nil || conf.Server != srv.URL() {
		t.Fatalf("admin.conf = %+v, %v; want server %s", conf, err, srv.URL())
	}
	if _, err := controlplane.Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "another shoal server is using") {
		t.Fatalf("second Start on the same data dir: %v", err)
	}
	cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the context ended")
	}
}
