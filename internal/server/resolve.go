package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/registry"
)

// resolveImages pins every App's and Job's image of the cluster's store
// to the digest its tag points at now ("shoal.local/hello:v1" becomes
// "shoal.local/hello:v1@sha256:…"), so what is stored, signed and run is
// the image the tag named at apply time: a later push of the tag changes
// nothing that runs until the manifest is applied again. A re-apply
// while the tag is unchanged pins the same digest, so it is no new
// revision. An image already pinned is its author's choice and is kept;
// other registries' images are left as written (the server cannot reach
// them; a namespace that requires signatures asks for their digest in
// checkPolicy). A signed template must arrive pinned: pinning it here
// would break its signature (shoal apply --sign-key pins before signing).
func (s *Server) resolveImages(ctx context.Context, objs []api.Object) error {
	for i, o := range objs {
		t := templateOf(o)
		if t == nil {
			continue
		}
		repo, tag, digest, ok := api.LocalImage(t.Image)
		if !ok {
			continue
		}
		fail := func(format string, args ...any) error {
			return &api.InvalidError{Document: i + 1, Kind: o.GetTypeMeta().Kind, Name: o.GetMeta().Name,
				Errors: []api.FieldError{{Path: "spec.image", Message: fmt.Sprintf("%q: ", t.Image) + fmt.Sprintf(format, args...)}}}
		}
		switch {
		case digest != "" && api.ImageDigest(t.Image) == "":
			return fail("%q is not a digest the image store keeps: want sha256: and 64 lowercase hex digits", digest)
		case digest != "":
			continue
		case t.Signature != nil:
			return fail("a signed template must name its image by digest, or the signature covers a tag that any push can move (and pinning it here would break the signature); sign with shoal apply --sign-key, which pins %s images before it signs", api.LocalRegistry)
		case s.images == nil:
			return fail("this server keeps no images, so it cannot pin the tag to a digest; name the image by digest (IMAGE@sha256:…)")
		}
		d, err := s.images.Resolve(ctx, repo, tag)
		switch {
		case errors.Is(err, registry.ErrUnknownImage):
			return fail("not in the cluster's image store: push it first (shoal image push), or name the image by digest")
		case errors.Is(err, registry.ErrInvalidName):
			return fail("%v", err)
		case err != nil:
			return fmt.Errorf("resolve %s: %w", t.Image, err)
		}
		t.Image += "@" + d
	}
	return nil
}
