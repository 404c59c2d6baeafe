// Package e2e runs the real shoal binary against a real containerd, runc,
// CNI plugins and images, the way the README tells a newcomer to: start a
// cluster, push images, apply, get, curl, logs, scale, delete, break
// things on purpose.
//
// The tests need root and containerd; `make test` starts a private
// containerd and names it in $SHOAL_CONTAINERD_ADDRESS. Without them the
// tests skip, except under CI=true, where that is a failure.
package e2e
