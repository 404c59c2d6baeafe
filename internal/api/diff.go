package api

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Diff lists what a user wrote that differs between two versions of an
// object — its labels and spec, field by field — as
// "spec.replicas: 3 -> 5". Fields only in one version show "<none>" on the
// other side. `shoal apply --dry-run` prints it.
func Diff(old, updated Object) []string {
	a, b := flatFields(old), flatFields(updated)
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if oka && okb && va == vb {
			continue
		}
		if !oka {
			va = "<none>"
		}
		if !okb {
			vb = "<none>"
		}
		out = append(out, fmt.Sprintf("%s: %s -> %s", k, truncate(va), truncate(vb)))
	}
	return out
}

// flatFields maps each leaf of an object's labels and spec to its JSON.
func flatFields(o Object) map[string]string {
	out := map[string]string{}
	if o == nil {
		return out
	}
	b, err := json.Marshal(o)
	if err != nil {
		return out
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return out
	}
	if md, ok := m["metadata"].(map[string]any); ok && md["labels"] != nil {
		flatten("metadata.labels", md["labels"], out)
	}
	if spec, ok := m["spec"]; ok {
		flatten("spec", spec, out)
	}
	return out
}

func flatten(path string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return
		}
		for k, e := range t {
			flatten(fieldPath(path, k), e, out)
		}
	case []any:
		if len(t) == 0 {
			return
		}
		for i, e := range t {
			flatten(indexPath(path, i), e, out)
		}
	default:
		b, _ := json.Marshal(t)
		out[path] = string(b)
	}
}
