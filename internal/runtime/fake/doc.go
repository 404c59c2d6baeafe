// Package fake is a runtime.Driver in memory: containers are records, a
// process "runs" from Start until Stop or Exit. Unit tests drive the agent
// with it, and `shoal agent --runtime fake` runs hollow nodes on it, so
// the control plane can be measured with thousands of nodes on one
// machine. It never touches the host.
package fake
