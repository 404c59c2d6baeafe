package store

import clientv3 "go.etcd.io/etcd/client/v3"

// Client is the member's raw client, for this package's own tests.
func (e *Embedded) Client() *clientv3.Client { return e.cli }
