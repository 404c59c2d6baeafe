package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A value is a parsed document before it meets a Go type: the part of YAML
// that JSON can say, in document order, with each scalar's text as written
// so error messages can quote it.
type value struct {
	kind   valueKind
	text   string   // a string's value; a number's or boolean's text as written
	num    string   // valInt: decimal digits ("31" for 0x1F)
	b      bool     // valBool
	fields []field  // valMap, in document order
	items  []*value // valList
}

type valueKind int

const (
	valNull valueKind = iota
	valString
	valInt
	valFloat
	valBool
	valMap
	valList
)

type field struct {
	key string
	val *value
}

// get returns the value of a map's key, or nil.
func (v *value) get(key string) *value {
	for _, f := range v.fields {
		if f.key == key {
			return f.val
		}
	}
	return nil
}

// describe says what a value is, for "expected X, got Y" messages.
func (v *value) describe() string {
	switch v.kind {
	case valString:
		return "string " + quote(v.text)
	case valInt, valFloat:
		return "number " + truncate(v.text)
	case valBool:
		return "boolean " + truncate(v.text)
	case valMap:
		return "map"
	case valList:
		return "list"
	}
	return "null"
}

// kindName is what kind of value v is, without the value.
func (v *value) kindName() string {
	switch v.kind {
	case valString:
		return "string"
	case valInt, valFloat:
		return "number"
	case valBool:
		return "boolean"
	case valMap:
		return "map"
	case valList:
		return "list"
	}
	return "null"
}

// truncate shortens a number's or boolean's text, which is ASCII.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Document-level problems; they carry no field path.
const (
	msgTooLarge = "larger than 1 MiB"
	msgAliases  = "YAML aliases are not allowed"
	msgTooDeep  = "nested deeper than 32 levels"
)

// maxDepth bounds nesting of maps and lists. shoal's objects need six
// levels; the limit exists so hostile input cannot exhaust the stack.
const maxDepth = 32

// fromYAML converts one parsed YAML document. It refuses aliases and
// anchors instead of expanding them, which is what defeats "billion laughs",
// and never follows an alias, so it runs in time linear in the text.
func fromYAML(n *yaml.Node, path string, depth int) (*value, error) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return nil, FieldError{Message: msgAliases}
	}
	if (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) && depth >= maxDepth {
		return nil, FieldError{Message: msgTooDeep}
	}
	switch n.Kind {
	case yaml.MappingNode:
		if tag := n.ShortTag(); tag != "!!map" {
			return nil, tagError(path, tag)
		}
		v := &value{kind: valMap, fields: make([]field, 0, len(n.Content)/2)}
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, err := yamlKey(n.Content[i], path)
			if err != nil {
				return nil, err
			}
			p := fieldPath(path, key)
			if seen[key] {
				return nil, FieldError{Path: p, Message: "duplicate key"}
			}
			seen[key] = true
			child, err := fromYAML(n.Content[i+1], p, depth+1)
			if err != nil {
				return nil, err
			}
			v.fields = append(v.fields, field{key, child})
		}
		return v, nil
	case yaml.SequenceNode:
		if tag := n.ShortTag(); tag != "!!seq" {
			return nil, tagError(path, tag)
		}
		v := &value{kind: valList, items: make([]*value, 0, len(n.Content))}
		for i, c := range n.Content {
			child, err := fromYAML(c, indexPath(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			v.items = append(v.items, child)
		}
		return v, nil
	case yaml.ScalarNode:
		return yamlScalar(n, path)
	}
	return nil, FieldError{Path: path, Message: "unsupported YAML node"}
}

func yamlKey(k *yaml.Node, path string) (string, error) {
	if k.Kind == yaml.AliasNode || k.Anchor != "" {
		return "", FieldError{Message: msgAliases}
	}
	if k.Kind != yaml.ScalarNode {
		kind := "map"
		if k.Kind == yaml.SequenceNode {
			kind = "list"
		}
		return "", FieldError{Path: path, Message: "map keys must be strings, got " + kind}
	}
	switch tag := k.ShortTag(); tag {
	case "!!str":
		return k.Value, nil
	case "!!merge":
		return "", FieldError{Path: path, Message: "YAML merge keys (<<) are not allowed"}
	default:
		v, err := yamlScalar(k, path)
		if err != nil {
			return "", err
		}
		return "", FieldError{Path: path, Message: "map keys must be strings, got " + v.describe()}
	}
}

func yamlScalar(n *yaml.Node, path string) (*value, error) {
	tag := n.ShortTag()
	bad := func() error {
		return FieldError{Path: path, Message: fmt.Sprintf("%s is not a valid %s", quote(n.Value), tag)}
	}
	switch tag {
	case "!!str", "!!timestamp":
		// A timestamp stays the text the user wrote; time fields parse it.
		return &value{kind: valString, text: n.Value}, nil
	case "!!null":
		return &value{kind: valNull, text: n.Value}, nil
	case "!!bool":
		var b bool
		if n.Decode(&b) != nil {
			return nil, bad()
		}
		return &value{kind: valBool, text: n.Value, b: b}, nil
	case "!!int", "!!float":
		// Let the YAML library resolve 0x1F, 0o17, 1_000 and friends.
		var x any
		if n.Decode(&x) != nil {
			return nil, bad()
		}
		switch x := x.(type) {
		case int:
			return &value{kind: valInt, text: n.Value, num: strconv.Itoa(x)}, nil
		case int64:
			return &value{kind: valInt, text: n.Value, num: strconv.FormatInt(x, 10)}, nil
		case uint64:
			return &value{kind: valInt, text: n.Value, num: strconv.FormatUint(x, 10)}, nil
		case float64:
			return &value{kind: valFloat, text: n.Value}, nil
		}
		return nil, bad()
	}
	return nil, tagError(path, tag)
}

func tagError(path, tag string) error {
	return FieldError{Path: path, Message: "YAML tag " + quote(tag) + " is not allowed"}
}

// parseJSON reads exactly one JSON value, with the same depth limit and
// duplicate-key check as YAML input.
func parseJSON(data []byte) (*value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSON(dec, "", 0)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = FieldError{Message: "unexpected data after the JSON value"}
		}
	}
	if err == nil {
		return v, nil
	}
	var fe FieldError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &fe):
		return nil, fe
	case errors.As(err, &se):
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return nil, FieldError{Message: fmt.Sprintf("line %d: %s", line, se.Error())}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, FieldError{Message: "unexpected end of JSON input"}
	}
	return nil, FieldError{Message: err.Error()}
}

func readJSON(dec *json.Decoder, path string, depth int) (*value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, FieldError{Message: msgTooDeep}
		}
		if t == '[' {
			v := &value{kind: valList}
			for dec.More() {
				child, err := readJSON(dec, indexPath(path, len(v.items)), depth+1)
				if err != nil {
					return nil, err
				}
				v.items = append(v.items, child)
			}
			_, err := dec.Token() // ']'
			return v, err
		}
		v := &value{kind: valMap}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key := tok.(string) // the decoder only yields string keys inside an object
			p := fieldPath(path, key)
			if seen[key] {
				return nil, FieldError{Path: p, Message: "duplicate key"}
			}
			seen[key] = true
			child, err := readJSON(dec, p, depth+1)
			if err != nil {
				return nil, err
			}
			v.fields = append(v.fields, field{key, child})
		}
		_, err := dec.Token() // '}'
		return v, err
	case string:
		return &value{kind: valString, text: t}, nil
	case json.Number:
		if strings.ContainsAny(string(t), ".eE") {
			return &value{kind: valFloat, text: string(t)}, nil
		}
		return &value{kind: valInt, text: string(t), num: string(t)}, nil
	case bool:
		return &value{kind: valBool, text: strconv.FormatBool(t), b: t}, nil
	}
	return &value{kind: valNull, text: "null"}, nil
}
