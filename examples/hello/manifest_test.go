package main

import (
	"os"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
)

// The example a newcomer applies first must stay valid as the API grows.
func TestExampleManifestIsValid(t *testing.T) {
	b, err := os.ReadFile("app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := api.Decode(b)
	if err != nil {
		t.Fatalf("examples/hello/app.yaml: %v", err)
	}
	if len(objs) != 2 {
		t.Fatalf("app.yaml has %d objects, want 2 (hello and hello-public)", len(objs))
	}
}
