// Package overlay is the encrypted network between nodes: a WireGuard
// device per node (wireguard-go in the agent's process, on a TUN device),
// whose peers are the other nodes. Each peer's allowed addresses are its
// container subnet (and those it relays), so a packet from a peer is
// accepted only with a source address that peer owns.
//
// The package knows nothing of shoal's objects: the agent turns the Node
// list into []Peer and the routes that lead into the device.
package overlay
