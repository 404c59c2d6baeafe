package registry_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/image/imagetest"
)

func TestHandler(t *testing.T) {
	r, srv := newRegistry(t, t.TempDir())
	push(t, r, imagetest.Tarball(t, "shoal.local/library/hello:v1", "v1"))
	img := pull(t, srv, "library/hello:v1")
	mf := digest(t, img).String()
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cfgName.String()
	rawMf, _ := img.RawManifest()
	rawCfg, _ := img.RawConfigFile()
	unknown := "sha256:" + strings.Repeat("0", 64)

	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string // OCI error code, for errors
		wantType     string
		wantDigest   string
		wantLength   int
	}{
		{"GET", "/v2/", 200, "", "application/json", "", 2},
		{"HEAD", "/v2/library/hello/manifests/v1", 200, "", "application/vnd.docker.distribution.manifest.v2+json", mf, len(rawMf)},
		{"GET", "/v2/library/hello/manifests/v1", 200, "", "application/vnd.docker.distribution.manifest.v2+json", mf, len(rawMf)},
		{"GET", "/v2/library/hello/manifests/" + mf, 200, "", "application/vnd.docker.distribution.manifest.v2+json", mf, len(rawMf)},
		{"HEAD", "/v2/library/hello/blobs/" + cfg, 200, "", "application/octet-stream", cfg, len(rawCfg)},
		{"GET", "/v2/library/hello/blobs/" + cfg, 200, "", "application/octet-stream", cfg, len(rawCfg)},

		{"GET", "/v2/library/hello/manifests/v2", 404, "MANIFEST_UNKNOWN", "application/json", "", -1},
		{"HEAD", "/v2/library/hello/manifests/v2", 404, "", "application/json", "", -1},
		{"GET", "/v2/library/nope/manifests/v1", 404, "MANIFEST_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/hello/manifests/v1", 404, "MANIFEST_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/library/hello/manifests/" + unknown, 404, "MANIFEST_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/library/hello/manifests/" + cfg, 404, "MANIFEST_UNKNOWN", "application/json", "", -1}, // a blob, not a manifest
		{"GET", "/v2/library/hello/manifests/sha256:xyz", 404, "MANIFEST_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/library/hello/blobs/" + unknown, 404, "BLOB_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/library/nope/blobs/" + cfg, 404, "BLOB_UNKNOWN", "application/json", "", -1},
		{"GET", "/v2/Library/hello/manifests/v1", 400, "NAME_INVALID", "application/json", "", -1},
		{"GET", "/v2/../../etc/manifests/v1", 400, "NAME_INVALID", "application/json", "", -1},
		{"GET", "/v2/library/hello/uploads/x", 404, "NAME_UNKNOWN", "application/json", "", -1},
		{"PUT", "/v2/library/hello/manifests/v1", 405, "UNSUPPORTED", "application/json", "", -1},
		{"POST", "/v2/library/hello/blobs/uploads/", 405, "UNSUPPORTED", "application/json", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if got := resp.Header.Get("Docker-Content-Digest"); got != tt.wantDigest {
				t.Errorf("Docker-Content-Digest %q, want %q", got, tt.wantDigest)
			}
			if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
				t.Errorf("Docker-Distribution-API-Version %q, want registry/2.0", got)
			}
			if tt.wantLength >= 0 {
				if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(tt.wantLength) {
					t.Errorf("Content-Length %q, want %d", got, tt.wantLength)
				}
				if tt.method == "GET" && len(body) != tt.wantLength {
					t.Errorf("body has %d bytes, want %d", len(body), tt.wantLength)
				}
			}
			if tt.wantCode != "" {
				var e struct {
					Errors []struct{ Code, Message string }
				}
				if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != tt.wantCode {
					t.Errorf("body %s, want one OCI error with code %s", body, tt.wantCode)
				}
			}
		})
	}
}
