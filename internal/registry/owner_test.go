package registry_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/image/imagetest"
	"github.com/shoal-dev/shoal/internal/registry"
)

func TestRepositoryNamespace(t *testing.T) {
	for repo, want := range map[string]string{
		"hello":           "default",
		"payments/api":    "payments",
		"payments/api/v2": "payments",
		"library/hello":   "library",
		"default/hello":   "default",
	} {
		if got := registry.RepositoryNamespace(repo); got != want {
			t.Errorf("RepositoryNamespace(%q) = %q, want %q", repo, got, want)
		}
	}
}

// A push that its caller refuses for one repository changes no tag, of
// that repository or of any other in the same archive.
func TestPushRefusedChangesNothing(t *testing.T) {
	r, _ := newRegistry(t, filepath.Join(t.TempDir(), "images"))
	push(t, r, imagetest.Tarball(t, "shoal.local/payments/api:v3", "theirs"))
	ctx := context.Background()
	before, err := r.Resolve(ctx, "payments/api", "v3")
	if err != nil {
		t.Fatalf("Resolve after the owner's push: %v", err)
	}

	refuse := errors.New("not yours")
	var asked []string
	_, err = r.PushTarball(ctx, bytes.NewReader(imagetest.Tarball(t, "shoal.local/payments/api:v3", "mine")), func(repo string) error {
		asked = append(asked, repo)
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("PushTarball refused by its caller: %v, want the caller's error", err)
	}
	if len(asked) != 1 || asked[0] != "payments/api" {
		t.Errorf("asked about %q, want [payments/api]", asked)
	}
	if after, err := r.Resolve(ctx, "payments/api", "v3"); err != nil || after != before {
		t.Errorf("payments/api:v3 after a refused push: %s, %v; want %s", after, err, before)
	}
	if _, err := r.Resolve(ctx, "payments/other", "v1"); !errors.Is(err, registry.ErrUnknownImage) {
		t.Errorf("Resolve of a tag never pushed: %v, want ErrUnknownImage", err)
	}
}
