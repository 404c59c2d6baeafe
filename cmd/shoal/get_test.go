package main

import (
	"strings"
	"testing"

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
