// Package server is shoal's HTTP API: REST over the store's objects under
// /api/v1, multi-document apply, watch streams, nodes' and servers' joins
// and nodes' certificate renewal, instance logs and exec (proxied to the node that runs the
// instance), image push and pulls through the image registry, plus
// /healthz and /metrics.
//
// It owns who may do what: authentication (client certificates, bearer
// tokens), roles, what a node may say of itself, and the one admission list
// (admission.go) every write of objects passes, from a client or from a
// controller (Server.Admit): validation, namespace policy and quota, images
// pinned to digests, Secrets sealed. Errors from the store and from
// validation become HTTP statuses in exactly one place, writeError. It
// decides no placement and reconciles nothing: what runs where is the
// controllers' and scheduler's business.
package server
