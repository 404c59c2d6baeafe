package api

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// strictDecoder copies a value tree into a Go object by its json tags,
// collecting an error with a full path for every unknown field and every
// wrong type. encoding/json's DisallowUnknownFields stops at the first
// problem and does not say where it is, which is no help in a manifest.
//
// It follows encoding/json where it is silent: null leaves a field at its
// zero value, and an embedded struct without a json name is inline. It is
// stricter where encoding/json is lenient: field names match exactly, not
// case-insensitively.
type strictDecoder struct {
	errs []FieldError
	// skipStatus ignores the value of a top-level "status", for manifests
	// that are the output of `shoal get -o yaml`.
	skipStatus bool
	// hideValues keeps values out of error messages (a Secret's).
	hideValues bool
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	portRefType = reflect.TypeFor[PortRef]()
)

func (d *strictDecoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (d *strictDecoder) expected(path, want string, got *value) {
	if d.hideValues {
		d.fail(path, "expected %s, got a %s (the value is not shown)", want, got.kindName())
		return
	}
	d.fail(path, "expected %s, got %s", want, got.describe())
}

func (d *strictDecoder) decode(path string, in *value, out reflect.Value) {
	if in.kind == valNull {
		return
	}
	t := out.Type()
	switch {
	case t == timeType:
		d.decodeTime(path, in, out)
	case t == portRefType:
		switch in.kind {
		case valString:
			out.SetString(in.text)
		case valInt:
			out.SetString(in.num)
		default:
			d.expected(path, "a port number or name", in)
		}
	case t.Kind() == reflect.Pointer:
		elem := reflect.New(t.Elem())
		d.decode(path, in, elem.Elem())
		out.Set(elem)
	case t.Kind() == reflect.String:
		if in.kind != valString {
			d.expected(path, "string", in)
			return
		}
		out.SetString(in.text)
	case t.Kind() == reflect.Int32 || t.Kind() == reflect.Int64:
		if in.kind != valInt {
			d.expected(path, "integer", in)
			return
		}
		n, err := strconv.ParseInt(in.num, 10, t.Bits())
		if err != nil {
			d.fail(path, "%s is out of range", truncate(in.text))
			return
		}
		out.SetInt(n)
	case t.Kind() == reflect.Float64:
		if in.kind != valInt && in.kind != valFloat {
			d.expected(path, "number", in)
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(in.text), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.fail(path, "%s is not a finite number", truncate(in.text))
			return
		}
		out.SetFloat(f)
	case t.Kind() == reflect.Bool:
		if in.kind != valBool {
			d.expected(path, "boolean", in)
			return
		}
		out.SetBool(in.b)
	case t.Kind() == reflect.Slice:
		if in.kind != valList {
			d.expected(path, "list", in)
			return
		}
		if len(in.items) == 0 {
			return // nil, so that an empty list and none compare equal
		}
		s := reflect.MakeSlice(t, len(in.items), len(in.items))
		for i, item := range in.items {
			d.decode(indexPath(path, i), item, s.Index(i))
		}
		out.Set(s)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		if in.kind != valMap {
			d.expected(path, "map", in)
			return
		}
		if len(in.fields) == 0 {
			return
		}
		m := reflect.MakeMapWithSize(t, len(in.fields))
		for _, f := range in.fields {
			elem := reflect.New(t.Elem()).Elem()
			d.decode(fieldPath(path, f.key), f.val, elem)
			m.SetMapIndex(reflect.ValueOf(f.key).Convert(t.Key()), elem)
		}
		out.Set(m)
	case t.Kind() == reflect.Struct:
		if in.kind != valMap {
			d.expected(path, "map", in)
			return
		}
		fields := structFields(t)
		for _, f := range in.fields {
			p := fieldPath(path, f.key)
			index, ok := fields[f.key]
			switch {
			case !ok:
				d.fail(p, "unknown field")
			case d.skipStatus && p == "status":
			default:
				d.decode(p, f.val, out.FieldByIndex(index))
			}
		}
	default:
		// Only reachable if a wire type gains a field of a new Go type.
		d.fail(path, "cannot decode into Go type %s", t)
	}
}

func (d *strictDecoder) decodeTime(path string, in *value, out reflect.Value) {
	const want = "an RFC 3339 timestamp"
	if in.kind != valString {
		d.expected(path, want, in)
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, in.text)
	// Stored in UTC; a year outside 0-9999 could not be encoded again.
	if ts = ts.UTC(); err != nil || ts.Year() < 0 || ts.Year() > 9999 {
		d.expected(path, want, in)
		return
	}
	out.Set(reflect.ValueOf(ts))
}

// fieldCache maps a struct type to its JSON field names and their indices.
var fieldCache sync.Map // reflect.Type -> map[string][]int

func structFields(t reflect.Type) map[string][]int {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string][]int)
	}
	fields := map[string][]int{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(index), i)
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, idx) // inline, as encoding/json does
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			fields[name] = idx
		}
	}
	walk(t, nil)
	fieldCache.Store(t, fields)
	return fields
}

// errAsField extracts the FieldError the tree builders return.
func errAsField(err error) FieldError {
	var fe FieldError
	if errors.As(err, &fe) {
		return fe
	}
	return FieldError{Message: err.Error()}
}
