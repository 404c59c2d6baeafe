package api

import "testing"

func TestImageReferences(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		image                  string
		digest                 string // ImageDigest
		repo, tag, localDigest string
		local                  bool
	}{
		{"shoal.local/hello:v1", "", "hello", "v1", "", true},
		{"shoal.local/hello", "", "hello", "latest", "", true},
		{"shoal.local/web/api:v3@" + d, d, "web/api", "v3", d, true},
		{"shoal.local/web/api@" + d, d, "web/api", "", d, true},
		{"shoal.local/hello:v1@sha256:short", "", "hello", "v1", "sha256:short", true},
		{"shoal.local/hello@md5:abc", "", "hello", "", "md5:abc", true},
		{"nginx:1.27", "", "", "", "", false},
		{"registry.example:5000/team/app:v1@" + d, d, "", "", "", false},
		{"shoal.localhost/x:v1", "", "", "", "", false},
		{"nginx@SHA256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", "", "", "", "", false},
	} {
		if got := ImageDigest(tc.image); got != tc.digest {
			t.Errorf("ImageDigest(%q) = %q, want %q", tc.image, got, tc.digest)
		}
		repo, tag, digest, ok := LocalImage(tc.image)
		if repo != tc.repo || tag != tc.tag || digest != tc.localDigest || ok != tc.local {
			t.Errorf("LocalImage(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.image, repo, tag, digest, ok, tc.repo, tc.tag, tc.localDigest, tc.local)
		}
	}
}
