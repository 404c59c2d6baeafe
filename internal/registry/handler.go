package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxManifestSize bounds what is read into memory to serve a manifest;
// pushes only ever store small ones.
const maxManifestSize = 4 << 20

// Handler serves the read side of the OCI distribution API under /v2/:
// enough for containerd's docker resolver and for go-containerregistry's
// remote package to pull.
//
//	GET|HEAD /v2/
//	GET|HEAD /v2/<name>/manifests/<tag or digest>
//	GET|HEAD /v2/<name>/blobs/<digest>        (Range requests too)
//	GET      /v2/<name>/tags/list
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(r.serveHTTP)
}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the image store is read-only over HTTP")
		return
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "not a registry API path")
		return
	}
	if rest == "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
		return
	}

	// <name> may contain slashes but the last two segments never do.
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown registry API path")
		return
	}
	repo := strings.Join(parts[:len(parts)-2], "/")
	kind, ref := parts[len(parts)-2], parts[len(parts)-1]
	if !validRepo(repo) {
		writeError(w, http.StatusBadRequest, "NAME_INVALID", "invalid repository name "+repo)
		return
	}
	switch {
	case kind == "manifests":
		r.serveManifest(w, req, repo, ref)
	case kind == "blobs":
		r.serveBlob(w, req, repo, ref)
	case kind == "tags" && ref == "list":
		r.serveTags(w, repo)
	default:
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown registry API path")
	}
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	unknown := func() {
		writeError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest unknown: "+repo+":"+ref)
	}
	var digest v1.Hash
	if strings.Contains(ref, ":") {
		h, ok := parseDigest(ref)
		if !ok {
			unknown()
			return
		}
		digest = h
	} else {
		if !validTag(ref) {
			unknown()
			return
		}
		h, err := r.resolve(req.Context(), repo, ref)
		if errors.Is(err, fs.ErrNotExist) {
			unknown()
			return
		}
		if err != nil {
			r.internalError(w, req, err)
			return
		}
		digest = h
	}
	if !r.hasManifest(repo, digest) {
		// Pushed to another server: copy it here first.
		if err := r.fetch(req.Context(), repo, digest); err != nil {
			if !errors.Is(err, errNotOnPeers) {
				r.log.Warn("image from another server", "err", err)
			}
			unknown()
			return
		}
	}

	f, err := os.Open(r.blobPath(digest))
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize))
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	w.Header().Set("Content-Type", string(manifestMediaType(b)))
	w.Header().Set("Docker-Content-Digest", digest.String())
	w.Header().Set("Etag", `"`+digest.String()+`"`)
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
}

func (r *Registry) serveBlob(w http.ResponseWriter, req *http.Request, repo, ref string) {
	digest, ok := parseDigest(ref)
	if !ok || !r.repoExists(repo) {
		writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown: "+repo+"@"+ref)
		return
	}
	f, err := os.Open(r.blobPath(digest))
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown: "+repo+"@"+ref)
		return
	}
	if err != nil {
		r.internalError(w, req, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", digest.String())
	w.Header().Set("Etag", `"`+digest.String()+`"`)
	w.Header().Set("Cache-Control", "max-age=31536000, immutable")
	http.ServeContent(w, req, "", time.Time{}, f)
}

func (r *Registry) serveTags(w http.ResponseWriter, repo string) {
	tags, err := r.tags(repo)
	if err != nil || len(tags) == 0 {
		writeError(w, http.StatusNotFound, "NAME_UNKNOWN", "repository unknown: "+repo)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}

func (r *Registry) internalError(w http.ResponseWriter, req *http.Request, err error) {
	r.log.Error("image store", "method", req.Method, "path", req.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "UNKNOWN", "internal error")
}

// manifestMediaType is the stored manifest's own mediaType field, or, for
// OCI documents that omit it, what its shape says it is.
func manifestMediaType(b []byte) types.MediaType {
	var m struct {
		MediaType types.MediaType  `json:"mediaType"`
		Manifests *json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err == nil && m.MediaType != "" {
		return m.MediaType
	}
	if m.Manifests != nil {
		return types.OCIImageIndex
	}
	return types.OCIManifestSchema1
}

// writeError answers in the OCI distribution spec's error format.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type regError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []regError `json:"errors"`
	}{[]regError{{code, message}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
