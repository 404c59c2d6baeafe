// Package store is shoal's typed view of etcd: create, read, update (by
// compare-and-swap on the object's revision), delete, multi-object apply in
// one transaction, and watch from a revision. It also starts the embedded
// etcd server that an all-in-one or server process uses by default.
//
// It is the only etcd client: what else the servers keep in etcd has a
// typed API here, one file per noun (election, registrations, members,
// quorum, cluster, secretkeys, imagetags, claims), and no other package
// imports go.etcd.io (imports_test.go). Those nouns keep the keys running
// clusters hold (layout_test.go).
//
// Keys are /shoal/<plural>/<namespace>/<name> for namespaced kinds and
// /shoal/<plural>/<name> for cluster-scoped ones. An object's
// metadata.revision is its key's etcd ModRevision; it is never stored in the
// value, so it can never go stale.
//
// The store must not validate objects (that is api's job) nor decide policy
// (that is the controllers'): it only keeps what it is given, safely.
package store
