// Package netproxy is the node's service discovery and load balancing:
// containers find an App by name, reach it on a stable virtual IP, and
// every node opens an App's published ports (a routing mesh).
//
// It owns, on one node:
//
//   - a DNS server on the bridge gateway (BridgeIP:53, UDP and TCP) that
//     answers APP, APP.NAMESPACE and APP.NAMESPACE.shoal with the App's
//     serviceIP and forwards every other name upstream;
//   - one TCP listener per App port on BridgeIP:<ephemeral>, and a nat chain
//     that DNATs serviceIP:containerPort to it, for containers (PREROUTING
//     -i bridge) and for the host itself (OUTPUT);
//   - a second nat chain that DNATs published ports in kernel mode (the
//     default) on the node's own addresses, loopback excepted, straight
//     to ready endpoints, masqueraded;
//   - one TCP listener per published port on PublishAddress:PORT: it
//     serves every connection in proxy mode, and in kernel mode what the
//     rules leave (loopback clients, or no endpoint ready). A port is
//     forwarded only while that listener holds it, so a port another
//     program of the node listens on is never taken over, and a port
//     outside the owner's range (Config.PortRange) is never opened; both
//     are logged and told in an Event on the Node;
//   - the namespace isolation rules (hostnet.PlanIsolation) from the
//     Namespaces with policy.isolation: namespace and their instances'
//     addresses, debounced, removed when Run returns; connections the
//     proxy carries itself are refused across an isolation too;
//   - the balancer behind all of them: least connections with round-robin
//     ties, a short dial timeout and a retry on the next endpoint, so an
//     instance that dies before its readiness is withdrawn costs nothing to
//     a client that is only opening a connection.
//
// It reads Nodes, Apps, Instances and Namespaces through the public API (list, then
// watch; relist on any error) and never writes them: serviceIPs are
// assigned by the control plane, readiness by the agents. An instance's
// address counts (as an endpoint, or for DNS) only inside the subnet of the
// node that runs it: a node writes its instances' status, and must not
// point other nodes' proxies at an address of its choosing. It must not tear down serving
// state because the server is unreachable: the last endpoints keep serving.
// It does not touch the container network itself (bridge, addresses,
// routes, masquerading belong to the runtime) and it proxies TCP only.
//
//	watch Apps ─┐                    ┌─▶ DNS table (atomic snapshot) ◀── DNS server
//	            ├─▶ apply (mu) ──────┼─▶ pools: endpoints per app port ◀── accept ─▶ pick ─▶ dial ─▶ splice
//	watch Insts ┘                    └─▶ kick ─▶ reconcile: listeners, then one iptables-restore of the chains
//
// A readiness change reaches the pools synchronously in apply, so it takes
// effect as soon as the watch event is read. Listeners and rules are
// reconciled in one goroutine, after every change and every few seconds
// (which retries a published port that could not be bound). A connection
// holds its endpoint, not the pool: an endpoint that leaves the set keeps
// its open connections until they end.
package netproxy
