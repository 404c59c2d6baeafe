package api

import (
	"fmt"
	"sort"
	"strings"
)

// Selector picks objects by their labels: every key=value must hold
// (key!=value: must not). `shoal get -l app=web,tier!=db` and the API's
// ?labelSelector= use it.
type Selector struct {
	reqs []requirement
}

type requirement struct {
	key, value string
	negate     bool
}

// ParseSelector reads "k=v,k2!=v2" ("k==v" is k=v). An empty string
// selects everything.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	if strings.TrimSpace(s) == "" {
		return sel, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		var r requirement
		var ok bool
		if r.key, r.value, ok = strings.Cut(part, "!="); ok {
			r.negate = true
		} else if r.key, r.value, ok = strings.Cut(part, "=="); !ok {
			r.key, r.value, ok = strings.Cut(part, "=")
		}
		r.key, r.value = strings.TrimSpace(r.key), strings.TrimSpace(r.value)
		if !ok || r.key == "" {
			return Selector{}, fmt.Errorf("label selector %q: %q is not key=value or key!=value: %w", s, part, ErrInvalid)
		}
		if strings.ContainsAny(r.key+r.value, "=!, ") {
			return Selector{}, fmt.Errorf("label selector %q: %q has a stray '=', '!', ',' or space: %w", s, part, ErrInvalid)
		}
		sel.reqs = append(sel.reqs, r)
	}
	sort.Slice(sel.reqs, func(i, j int) bool { return sel.reqs[i].key < sel.reqs[j].key })
	return sel, nil
}

// Empty says whether the selector selects everything.
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// Matches says whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		v, has := labels[r.key]
		if r.negate == (has && v == r.value) {
			return false
		}
	}
	return true
}

// String is the selector in the form ParseSelector reads.
func (s Selector) String() string {
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		op := "="
		if r.negate {
			op = "!="
		}
		parts[i] = r.key + op + r.value
	}
	return strings.Join(parts, ",")
}
