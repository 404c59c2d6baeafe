// Package registry is the server's built-in image store: it takes image
// tarballs pushed by users (the format internal/image writes) and serves
// them to every node's containerd over the read side of the OCI
// distribution API, so a cluster needs no outside registry.
//
// Images are named without a host: "shoal.local/hello:v1" is stored as
// repository "hello", tag "v1", and agents map the host shoal.local to this
// server when they pull. Short Docker Hub names keep Docker's defaulting,
// so "hello:v1" becomes "library/hello:v1".
//
// # Ownership
//
// A repository belongs to a namespace by its name (RepositoryNamespace):
// "payments/api" to payments, a one-part name such as "hello" to the
// default namespace. PushTarball asks its caller about every repository
// of an archive before any tag moves; the API server lets only the
// owning namespace's deployers (and cluster-admins) push. Apps name
// images by digest once applied, so a tag pushed again changes what the
// next apply pins, never what already runs.
//
// # Storage
//
// Everything lives under one directory, so a restarted server serves every
// image pushed before:
//
//	blobs/sha256/<hex>                   manifests, configs and layers, by digest
//	repositories/<repo>/_manifests/<hex> empty file: manifest <hex> was pushed to <repo>
//	repositories/<repo>/_tags/<tag>      "sha256:<hex>": what the tag points at
//	tmp/                                 uploads being checked; emptied by New
//
// A push is checked completely before anything becomes visible: blobs are
// written and verified (digest, size, layer diff IDs) in tmp/, renamed into
// blobs/, and only then are the repository's manifest links and tags
// written, each by an atomic rename. A failed push may leave unreferenced
// blobs behind, never a tag pointing at missing content. Repository names
// start each path component with a letter or digit, so "_manifests" and
// "_tags" cannot clash with a repository called "tags".
//
// # Limits
//
// The HTTP side is read-only (GET and HEAD of /v2/, manifests, blobs and
// tags/list); images arrive only through PushTarball, whose caller bounds
// the upload's size and decides who may push. Nothing is deleted or garbage
// collected yet. Only one Registry may use a directory at a time.
package registry
