// Package storetest starts a real embedded etcd for tests.
package storetest
