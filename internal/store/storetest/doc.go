// Package storetest starts a real embedded etcd for tests, and gives
// tests that must reach under the store (an attacker's raw etcd writes, a
// compaction, an etcd dump) a raw client: the only etcd client outside
// package store, and for tests only.
package storetest
