// Package iptables holds what more than one part of shoal needs to read
// iptables' own output.
package iptables
