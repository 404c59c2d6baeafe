// Package testutil holds what shoal's tests share: waiting for a condition
// with a deadline and a message that says what was last seen, a free TCP
// port, and skipping a test that cannot run here (no root, -short) except
// under CI=true, where a test that cannot run is a failure.
//
// It is for tests only and imports nothing of shoal's, so that any
// package's tests (and e2e/, test/) may use it.
package testutil
