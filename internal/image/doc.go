// Package image builds shoal's minimal container images: one static Linux
// binary, a few files a program expects (/etc/passwd, /etc/group, /tmp), and
// an OCI image config, written as a tarball a node or the server can load.
//
// # Tarball format
//
// Tarballs are in the "docker save" layout that go-containerregistry's
// tarball.Write produces: a manifest.json naming each image's config blob,
// its gzip-compressed layer files and its RepoTags. It was chosen over an
// OCI image-layout tar because both consumers read it without extra
// options:
//
//   - containerd's client.Import (and `ctr images import`, `docker load`)
//     turns RepoTags into image names itself; an OCI layout would need the
//     io.containerd.image.name annotation or an image-ref translator.
//   - registry.PushTarball reads it with tarball.Image and serves the same
//     manifest digest that Build reports.
//
// Media types are Docker schema 2 throughout (manifest, config and gzip
// layer), because that is what a docker-save tarball can express and what
// containerd synthesises when it imports one; containerd 1.6 pulls and runs
// them like OCI ones. containerd's import writes its own manifest, so an
// imported image's manifest digest differs from the registry's, while its
// config digest (the image ID) and layer digests are the same.
//
// Builds are reproducible: timestamps are the Unix epoch and files are owned
// by root, so the same binary and options give the same digests.
//
// The package must not talk to containerd, registries or the network; it
// only turns local files into image bytes.
package image
