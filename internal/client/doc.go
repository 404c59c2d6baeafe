// Package client is the Go client of shoal's HTTP API, used by the CLI, the
// agent and the tests. It speaks only the public API: nothing here reaches
// into the store.
package client
