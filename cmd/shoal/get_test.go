package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
)

func TestShortImage(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"shoal.local/hello:v1@" + d: "shoal.local/hello:v1@sha256:0123456789ab",
		"shoal.local/hello:v1":      "shoal.local/hello:v1",
		"nginx@sha256:short":        "nginx@sha256:short",
	} {
		if got := shortImage(in); got != want {
			t.Errorf("shortImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintQuotas(t *testing.T) {
	var b strings.Builder
	qs := []*api.QuotaUsage{
		{Namespace: "default", Used: api.QuotaAmounts{Objects: 3, Instances: 4, Bytes: 1536}, Limit: api.Quota{}.Limits()},
		{Namespace: "web", Used: api.QuotaAmounts{Objects: 2, Instances: 3, Bytes: 2 << 20, MilliCPU: 750, MemoryBytes: 384 << 20},
			Limit: api.Quota{Objects: 10, CPU: "2", Memory: "1Gi"}.Limits()},
	}
	if err := printQuotas(&b, qs); err != nil {
		t.Fatal(err)
	}
	want := "NAMESPACE   OBJECTS   INSTANCES   BYTES        CPU      MEMORY\n" +
		"default     3/500     4/1000      1.5Ki/16Mi   0/-      0/-\n" +
		"web         2/10      3/1000      2Mi/16Mi     750m/2   384Mi/1Gi\n"
	if got := b.String(); got != want {
		t.Errorf("printQuotas:\n%s\nwant:\n%s", got, want)
	}
}

func TestLookupKind(t *testing.T) {
	for in, want := range map[string]api.Kind{
		"apps": api.KindApp, "app": api.KindApp, "instance": api.KindInstance, "nodes": api.KindNode,
	} {
		k, err := lookupKind(in)
		if err != nil || k.Kind != want {
			t.Errorf("lookupKind(%q) = %v, %v; want %s", in, k.Kind, err, want)
		}
	}
	if _, err := lookupKind("pods"); err == nil || !strings.Contains(err.Error(), `unknown kind "pods"`) {
		t.Errorf("lookupKind(pods) = %v, want an error naming it", err)
	}
}

func TestAge(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{30 * time.Second, "30s"},
		{90 * time.Second, "1m"},
		{5 * time.Hour, "5h"},
		{47 * time.Hour, "47h"},
		{72 * time.Hour, "3d"},
	} {
		if got := age(now.Add(-tc.ago)); got != tc.want {
			t.Errorf("age(%v ago) = %q, want %q", tc.ago, got, tc.want)
		}
	}
	if got := age(time.Time{}); got != "-" {
		t.Errorf("age(zero) = %q, want -", got)
	}
}

func TestReqLim(t *testing.T) {
	for _, tc := range []struct {
		req, lim int64
		want     string
	}{
		{250, 500, "250m/500m"},
		{250, 250, "250m"},
		{250, 0, "250m/-"},
		{0, 0, "-"},
	} {
		if got := reqLim(tc.req, tc.lim, api.FormatMilliCPU); got != tc.want {
			t.Errorf("reqLim(%d, %d) = %q, want %q", tc.req, tc.lim, got, tc.want)
		}
	}
}
