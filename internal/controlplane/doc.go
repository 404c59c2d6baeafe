// Package controlplane starts one shoal server: its data directory and
// lock, the store (embedded etcd, an external cluster, or on first start
// a new member of an existing cluster's: join.go), the default namespace,
// the image registry (its tags shared with the other servers: images.go),
// the API listener and admin.conf, the audit log, and the controllers
// (which run while this server leads). It follows the shape of etcd's
// embed package: NewConfig, Validate, Start, then Ready and Wait.
//
// It owns start-up order and shutdown only; what each part does lives in
// its own package (store, server, controller, registry).
package controlplane
