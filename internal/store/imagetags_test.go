package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestImageTags(t *testing.T) {
	s, _ := storetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if d, ok, err := s.ImageTag(ctx, "web", "1"); err != nil || ok {
		t.Fatalf("ImageTag of an empty store = %q %v %v; want none", d, ok, err)
	}
	if err := s.SetImageTags(ctx, map[string]string{"web:1": "sha256:aa", "web:latest": "sha256:aa", "team/db:2": "sha256:bb"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ repo, tag, want string }{
		{"web", "1", "sha256:aa"},
		{"web", "latest", "sha256:aa"},
		{"team/db", "2", "sha256:bb"},
		{"web", "2", ""},
	} {
		d, ok, err := s.ImageTag(ctx, tc.repo, tc.tag)
		if err != nil || d != tc.want || ok != (tc.want != "") {
			t.Errorf("ImageTag(%s, %s) = %q %v %v; want %q", tc.repo, tc.tag, d, ok, err, tc.want)
		}
	}

	type seen struct {
		ref, digest string
		pushed      bool
	}
	calls := make(chan seen, 16)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.FollowImageTags(fctx, func(ref, digest string, pushed bool) { calls <- seen{ref, digest, pushed} })
	}()
	listed := map[string]string{}
	for range 3 {
		c := <-calls
		if c.pushed {
			t.Fatalf("a stored tag handed over as pushed: %+v", c)
		}
		listed[c.ref] = c.digest
	}
	if fmt.Sprint(listed) != "map[team/db:2:sha256:bb web:1:sha256:aa web:latest:sha256:aa]" {
		t.Fatalf("FollowImageTags listed %v", listed)
	}
	if err := s.SetImageTags(ctx, map[string]string{"web:2": "sha256:cc"}); err != nil {
		t.Fatal(err)
	}
	if c := <-calls; c != (seen{"web:2", "sha256:cc", true}) {
		t.Fatalf("after a push: %+v; want web:2 sha256:cc pushed", c)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("FollowImageTags after its context ended: %v", err)
	}
}
