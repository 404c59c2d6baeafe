// Package server is shoal's HTTP API: REST over the store's objects under
// /api/v1, multi-document apply, watch streams, instance logs (proxied to
// the node that runs the instance), image push and the image registry, plus
// /healthz and /metrics.
//
// Errors from the store and from validation become HTTP statuses in exactly
// one place, writeError. The server validates every write but decides no
// policy: what runs where is the controllers' and scheduler's business.
package server
