package api

import (
	"fmt"
	"strconv"
	"strings"
)

// PortRange is the node ports that published ports and hostPorts may use,
// both ends included. The cluster admin sets the cluster's (`shoal server
// --port-range`); a node's owner may narrow it for their node (`shoal
// agent --port-range`). A port outside it is refused: otherwise any
// deployer could publish 22 or the API's port and have every node hand
// its SSH or API connections to their container.
type PortRange struct {
	Min, Max int32
}

// DefaultPortRange is Kubernetes' NodePort range.
var DefaultPortRange = PortRange{Min: 30000, Max: 32767}

// ParsePortRange reads "30000-32767" (or one port, "30080").
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.ParseInt(strings.TrimSpace(lo), 10, 32)
	b, err2 := strconv.ParseInt(strings.TrimSpace(hi), 10, 32)
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return PortRange{}, fmt.Errorf("port range %s: want FIRST-LAST, ports from 1 to 65535, FIRST not above LAST (e.g. %s)", quote(clipped(s)), DefaultPortRange)
	}
	return PortRange{Min: int32(a), Max: int32(b)}, nil
}

// String is "30000-32767"; "" for the zero range.
func (r PortRange) String() string {
	if r.IsZero() {
		return ""
	}
	return strconv.Itoa(int(r.Min)) + "-" + strconv.Itoa(int(r.Max))
}

// IsZero reports whether r is unset.
func (r PortRange) IsZero() bool { return r == PortRange{} }

// Contains reports whether port is in r.
func (r PortRange) Contains(port int32) bool { return port >= r.Min && port <= r.Max }

// Within reports whether every port of r is in outer.
func (r PortRange) Within(outer PortRange) bool { return r.Min >= outer.Min && r.Max <= outer.Max }

// CheckPortRange returns a FieldError for every published port and
// hostPort of t outside r; path is the template's ("spec"). whose names
// the range ("the cluster's publish range") and setBy says who set it and
// how ("set by the cluster admin with --port-range"), so the message says
// what to do.
func CheckPortRange(path string, t *Template, r PortRange, whose, setBy string) []FieldError {
	var errs []FieldError
	check := func(p string, port int32) {
		if port != 0 && !r.Contains(port) {
			errs = append(errs, FieldError{Path: p, Message: fmt.Sprintf("%d is outside %s %s (%s); choose a port in the range", port, whose, r, setBy)})
		}
	}
	for i, p := range t.Ports {
		pp := indexPath(fieldPath(path, "ports"), i)
		check(pp+".publish", p.Publish)
		check(pp+".hostPort", p.HostPort)
	}
	return errs
}
