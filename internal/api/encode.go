package api

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Encode renders an object as indented "json" or as "yaml", in the form
// Decode reads back. YAML keeps the field order of the JSON (apiVersion,
// kind, metadata, spec, status) rather than sorting keys.
func Encode(obj Object, format string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	switch format {
	case "json":
		enc.SetIndent("", "  ")
	case "yaml":
	default:
		return nil, fmt.Errorf("unknown output format %q: use json or yaml", format)
	}
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.GetTypeMeta().Kind, err)
	}
	if format == "json" {
		return buf.Bytes(), nil
	}

	tree, err := parseJSON(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.GetTypeMeta().Kind, err)
	}
	var out bytes.Buffer
	ye := yaml.NewEncoder(&out)
	ye.SetIndent(2)
	ye.CompactSeqIndent()
	if err := ye.Encode(yamlNode(tree)); err != nil {
		return nil, fmt.Errorf("encode %s as YAML: %w", obj.GetTypeMeta().Kind, err)
	}
	if err := ye.Close(); err != nil {
		return nil, fmt.Errorf("encode %s as YAML: %w", obj.GetTypeMeta().Kind, err)
	}
	return out.Bytes(), nil
}

func yamlNode(v *value) *yaml.Node {
	switch v.kind {
	case valMap:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, f := range v.fields {
			n.Content = append(n.Content, yamlString(f.key), yamlNode(f.val))
		}
		return n
	case valList:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range v.items {
			n.Content = append(n.Content, yamlNode(item))
		}
		return n
	case valString:
		return yamlString(v.text)
	case valInt:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: v.num}
	case valFloat:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: v.text}
	case valBool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v.text}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

// yamlString lets the YAML library choose the quoting, so that strings like
// "yes", "1.0" or "1:20" are quoted for YAML 1.1 readers as well. Where the
// library gets it wrong ("<<" comes back tagged as a merge key), the string
// is double-quoted, which always reads back as itself.
func yamlString(s string) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(s); err != nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
	}
	return &n
}
