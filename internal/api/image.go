package api

import (
	"strings"
)

// LocalRegistry is the host name images of the cluster's own store carry
// ("shoal.local/hello:v1"); nodes map it to the servers.
const LocalRegistry = "shoal.local"

// ImageDigest returns the manifest digest an image reference is pinned to
// ("sha256:HEX" of "NAME:TAG@sha256:HEX"), or "" when it names only a tag.
func ImageDigest(image string) string {
	i := strings.LastIndexByte(image, '@')
	if i < 0 {
		return ""
	}
	d := image[i+1:]
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return ""
	}
	return d
}

// LocalImage splits a reference to the cluster's store
// ("shoal.local/web/api:v3@sha256:…") into its repository ("web/api"), tag
// ("v3"; "latest" when it names neither tag nor digest) and digest ("" when
// unpinned); ok is false for other registries' images. A suffix after "@"
// that is not a sha256 digest is returned as the digest, for the caller to
// refuse.
func LocalImage(image string) (repo, tag, digest string, ok bool) {
	rest, ok := strings.CutPrefix(image, LocalRegistry+"/")
	if !ok {
		return "", "", "", false
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest, digest = rest[:i], rest[i+1:]
	}
	repo = rest
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		repo, tag = rest[:i], rest[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	return repo, tag, digest, true
}
