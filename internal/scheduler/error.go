package scheduler

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrUnschedulable matches every *UnschedulableError with errors.Is.
var ErrUnschedulable = errors.New("unschedulable")

// UnschedulableError says why no node could take a request.
type UnschedulableError struct {
	// Nodes is how many nodes were considered.
	Nodes int
	// Reasons maps a Reason constant to how many nodes were refused for it.
	// Each node counts once, under the first filter that refused it.
	Reasons map[string]int

	// What the request needed and the most any node refused for lack of it
	// had free, to say how far off the request is.
	NeedMilliCPU        int64
	MostFreeMilliCPU    int64
	NeedMemoryBytes     int64
	MostFreeMemoryBytes int64
}

// Error reads like "0/3 nodes available: 2 insufficient cpu (needs 4, most
// free 2), 1 not ready", the most common reason first.
func (e *UnschedulableError) Error() string {
	if e.Nodes == 0 {
		return "no nodes registered"
	}
	reasons := make([]string, 0, len(e.Reasons))
	for r := range e.Reasons {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		if c := cmp.Compare(e.Reasons[b], e.Reasons[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes available: ", e.Nodes)
	for i, r := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", e.Reasons[r], r)
		switch r {
		case ReasonInsufficientCPU:
			fmt.Fprintf(&b, " (needs %s, most free %s)", formatCores(e.NeedMilliCPU), formatCores(e.MostFreeMilliCPU))
		case ReasonInsufficientMem:
			fmt.Fprintf(&b, " (needs %s, most free %s)", formatBytes(e.NeedMemoryBytes, true), formatBytes(e.MostFreeMemoryBytes, false))
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrUnschedulable) true.
func (e *UnschedulableError) Is(target error) bool { return target == ErrUnschedulable }

// explain runs every filter on every node to say why none can take p.
func (s *Snapshot) explain(p *pending) *UnschedulableError {
	e := &UnschedulableError{
		Nodes:           len(s.nodes),
		Reasons:         make(map[string]int),
		NeedMilliCPU:    p.milliCPU,
		NeedMemoryBytes: p.memoryBytes,
	}
	for i := range s.nodes {
		n := &s.nodes[i]
		reason := refusal(n, p)
		if reason == "" {
			continue // cannot happen: Place explains only when no node passed
		}
		e.Reasons[reason]++
		switch reason {
		case ReasonInsufficientCPU:
			e.MostFreeMilliCPU = max(e.MostFreeMilliCPU, n.capMilliCPU-n.milliCPU)
		case ReasonInsufficientMem:
			e.MostFreeMemoryBytes = max(e.MostFreeMemoryBytes, n.capMemoryBytes-n.memoryBytes)
		}
	}
	return e
}

// formatCores writes millicores as cores: 4000 → "4", 500 → "0.5".
func formatCores(milli int64) string {
	s := strconv.FormatInt(milli/1000, 10)
	if frac := milli % 1000; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
	}
	return s
}

// formatBytes writes bytes in the largest binary unit that keeps the number
// at least 1, with up to two decimals: 1610612736 → "1.5Gi". up rounds a
// fractional amount up (for what is needed) rather than down (for what is
// free), so the message never shows a need that looks like it fits.
func formatBytes(b int64, up bool) string {
	units := [...]string{"", "Ki", "Mi", "Gi", "Ti", "Pi"}
	u, div := 0, int64(1)
	for u < len(units)-1 && b/div >= 1024 {
		u, div = u+1, div*1024
	}
	if u == 0 {
		return strconv.FormatInt(b, 10)
	}
	// Hundredths of the unit, rounded as asked.
	hundredths := b / div * 100
	rem := b % div * 100 // b%div < div ≤ 2^50, so this cannot overflow
	hundredths += rem / div
	if up && rem%div != 0 {
		hundredths++
	}
	s := strconv.FormatInt(hundredths/100, 10)
	if h := hundredths % 100; h != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%02d", h), "0")
	}
	return s + units[u]
}
