package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxDocumentBytes is the largest manifest document accepted. Real manifests
// are a few KiB; the limit bounds what one document can cost to parse.
const MaxDocumentBytes = 1 << 20

// Decode reads a manifest: one or more YAML documents separated by "---"
// lines, or a single JSON object. Empty documents are skipped. Every
// document is decoded strictly into its kind's type, defaulted and
// validated; Decode returns all of them, or an *InvalidError about the first
// bad one and no objects.
//
// A top-level "status" is accepted and dropped, so the output of
// `shoal get -o yaml` can be applied again; so is the metadata the store
// assigns (uid, createdAt, deletedAt). Revision is kept: the server uses
// it as a compare-and-swap guard.
func Decode(data []byte) ([]Object, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) <= MaxDocumentBytes &&
		len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed) {
		// JSON is YAML too, but its own parser gets JSON right in the few
		// places YAML differs (escaped surrogate pairs, for one).
		tree, err := parseJSON(trimmed)
		if err != nil {
			return nil, newInvalid(1, "", "", []FieldError{errAsField(err)})
		}
		obj, err := decodeTree(1, tree, "", false)
		if err != nil {
			return nil, err
		}
		return []Object{obj}, nil
	}

	var objs []Object
	doc := 0 // number of the current non-empty document
	for _, c := range splitDocuments(data) {
		if len(c.text) > MaxDocumentBytes {
			return nil, newInvalid(doc+1, "", "", []FieldError{{Message: msgTooLarge}})
		}
		if len(bytes.TrimSpace(bytes.TrimPrefix(c.text, []byte("---")))) == 0 {
			// Empty without asking the parser, which is slow per document
			// and rejects some blank lines, such as a lone tab.
			continue
		}
		root, err := parseYAML(c)
		if err != nil {
			return nil, newInvalid(doc+1, "", "", []FieldError{errAsField(err)})
		}
		if root == nil {
			continue
		}
		doc++
		tree, err := fromYAML(root, "", 0)
		if err != nil {
			return nil, newInvalid(doc, "", "", []FieldError{errAsField(err)})
		}
		obj, err := decodeTree(doc, tree, "", false)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// DecodeObject reads one JSON object of the given kind, as the API server
// receives it on create and update, with the same strictness, defaults and
// validation as Decode. Like Decode it drops what a client may not set:
// status, and the metadata the store assigns (uid, createdAt, deletedAt).
func DecodeObject(kind Kind, data []byte) (Object, error) {
	return decodeOne(kind, data, false)
}

// DecodeStatus reads one JSON object of the given kind for a write of its
// status (PUT .../status): the one decoder that keeps status. The caller
// copies nothing but the status into the stored object.
func DecodeStatus(kind Kind, data []byte) (Object, error) {
	return decodeOne(kind, data, true)
}

func decodeOne(kind Kind, data []byte, keepStatus bool) (Object, error) {
	if _, ok := exactKind(kind); !ok {
		return nil, newInvalid(0, "", "", []FieldError{{Path: "kind", Message: quote(string(kind)) + " is not a known kind"}})
	}
	if len(data) > MaxDocumentBytes {
		return nil, newInvalid(0, kind, "", []FieldError{{Message: msgTooLarge}})
	}
	tree, err := parseJSON(data)
	if err != nil {
		return nil, newInvalid(0, kind, "", []FieldError{errAsField(err)})
	}
	return decodeTree(0, tree, kind, keepStatus)
}

// decodeTree turns one document's value tree into a defaulted, valid
// object. want, if set, is the only kind accepted. Status is dropped
// unless keepStatus; the store's own metadata always is.
func decodeTree(doc int, tree *value, want Kind, keepStatus bool) (Object, error) {
	if tree.kind != valMap {
		return nil, newInvalid(doc, want, "", []FieldError{{Message: "expected a map with apiVersion and kind, got " + tree.describe()}})
	}
	var name string
	if md := tree.get("metadata"); md != nil && md.kind == valMap {
		if n := md.get("name"); n != nil && n.kind == valString {
			name = n.text
		}
	}
	info, fe := kindOfTree(tree)
	if fe == nil && want != "" && info.Kind != want {
		fe = &FieldError{Path: "kind", Message: fmt.Sprintf("must be %s, got %s", want, quote(string(info.Kind)))}
	}
	if fe != nil {
		return nil, newInvalid(doc, want, name, []FieldError{*fe})
	}

	obj := info.New()
	d := strictDecoder{skipStatus: !keepStatus, hideValues: info.Kind == KindSecret}
	d.decode("", tree, reflect.ValueOf(obj).Elem())
	if len(d.errs) > 0 {
		return nil, newInvalid(doc, info.Kind, name, d.errs)
	}
	// What the store assigns is never the client's to say.
	m := obj.GetMeta()
	m.UID, m.CreatedAt, m.DeletedAt = "", time.Time{}, time.Time{}
	SetDefaults(obj)
	if err := Validate(obj); err != nil {
		var ie *InvalidError
		if errors.As(err, &ie) {
			ie.Document = doc
		}
		return nil, err
	}
	return obj, nil
}

func kindOfTree(tree *value) (KindInfo, *FieldError) {
	k := tree.get("kind")
	switch {
	case k == nil || k.kind == valNull:
		return KindInfo{}, &FieldError{Path: "kind", Message: "required"}
	case k.kind != valString:
		return KindInfo{}, &FieldError{Path: "kind", Message: "expected string, got " + k.describe()}
	}
	if info, ok := exactKind(Kind(k.text)); ok {
		return info, nil
	}
	msg := quote(k.text) + " is not a known kind"
	if info, ok := LookupKind(k.text); ok {
		msg += fmt.Sprintf(" (did you mean %s?)", info.Kind)
	} else {
		names := make([]string, 0, len(Kinds()))
		for _, info := range Kinds() {
			names = append(names, string(info.Kind))
		}
		msg += " (use " + strings.Join(names, ", ") + ")"
	}
	return KindInfo{}, &FieldError{Path: "kind", Message: msg}
}

// exactKind looks a kind up by its exact name, as manifests must spell it.
func exactKind(k Kind) (KindInfo, bool) {
	for _, info := range Kinds() {
		if info.Kind == k {
			return info, true
		}
	}
	return KindInfo{}, false
}

// chunk is one YAML document's text and the line it starts on.
type chunk struct {
	text []byte
	line int
}

// splitDocuments cuts a YAML stream at its "---" lines. YAML forbids a
// document marker at the start of a line inside any scalar, so this split
// agrees with the parser's, and it lets each document's size be checked
// before any of it is parsed. The marker line stays with its document,
// since it may carry content ("--- {a: 1}").
func splitDocuments(data []byte) []chunk {
	var chunks []chunk
	start, startLine, line := 0, 1, 1
	for i := 0; i < len(data); line++ {
		next := len(data)
		if nl := bytes.IndexByte(data[i:], '\n'); nl >= 0 {
			next = i + nl + 1
		}
		if i > start && isDocumentMarker(data[i:next]) {
			chunks = append(chunks, chunk{data[start:i], startLine})
			start, startLine = i, line
		}
		i = next
	}
	return append(chunks, chunk{data[start:], startLine})
}

func isDocumentMarker(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	return len(line) == 3 || strings.IndexByte(" \t\r\n", line[3]) >= 0
}

// parseYAML parses one document, returning nil for an empty one.
func parseYAML(c chunk) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library panics on some malformed input; that is the
		// input's fault, not a reason to crash the server.
		if r := recover(); r != nil {
			root, err = nil, FieldError{Message: "cannot parse YAML"}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(c.text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, yamlError(err, c.line)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, FieldError{Message: fmt.Sprintf("line %d: more than one document: separate documents with a --- line", c.line+extra.Line-1)}
	} else if err != io.EOF {
		return nil, yamlError(err, c.line)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" && root.Anchor == "" {
		return nil, nil
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlError rewrites a YAML parse error to count lines from the start of
// the whole input rather than of the document. The library offers only the
// message text, so this is the one place that reads it.
func yamlError(err error, firstLine int) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.Contains(msg, "exceeded max depth") {
		return FieldError{Message: msgTooDeep}
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			msg = fmt.Sprintf("line %d: %s", n+firstLine-1, msg[len(m[0]):])
		}
	}
	return FieldError{Message: msg}
}
