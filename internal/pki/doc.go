// Package pki is the cluster's identity: its certificate authority, the
// certificates it issues to servers, nodes and admins, and join tokens.
//
// The first server creates the CA (an ECDSA P-256 key, kept on servers
// only, 0600) and every TLS connection in the cluster chains to it. Who a
// certificate speaks for is in its subject: CommonName is the identity
// ("admin", "node:NAME", "server:HOST") and Organization the group
// (GroupAdmins, GroupNodes, GroupServers). A node certificate also names the
// Node object it was issued for (a URI "shoal:node/NAME/UID"): removing the
// Node revokes every certificate issued for it, at once.
//
// A join token ("SHOAL1-<CA fingerprint>-<id>.<secret>") carries the
// SHA-256 fingerprint of the CA certificate, so a joining node verifies the
// cluster before it sends anything, and a secret the server keeps only as
// a hash.
package pki
