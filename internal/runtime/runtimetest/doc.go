// Package runtimetest is the conformance suite every runtime.Driver must
// pass: the in-memory fake (runtime/fake) and the containerd driver run the
// same checks, so the fake the agent's unit tests use behaves as the real
// driver does where the agent relies on it.
package runtimetest
