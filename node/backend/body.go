package backend

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/meshnode/meshnode/internal/jsonscan"
)

// The payload's top level and the backend request body are small ordered
// lists rather than maps: a chat payload has a handful of members, and a
// list costs one allocation where a map costs two plus a hash per lookup,
// and a body value needs no boxing (issue 11 item 9).

// member is one top-level member of a payload object.
type member struct {
	name string
	val  json.RawMessage
}

// object is a payload's top level in document order. A repeated name is
// kept, and get returns its last value, which is what json.Unmarshal into
// a map keeps (FuzzParseObject).
type object []member

// get returns the value of name, the last one when repeated.
func (o object) get(name string) (json.RawMessage, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].name == name {
			return o[i].val, true
		}
	}
	return nil, false
}

// value is get without the presence flag (nil when absent).
func (o object) value(name string) json.RawMessage {
	v, _ := o.get(name)
	return v
}

// fieldKind says which of a bodyField's values is set.
type fieldKind uint8

const (
	fieldRaw    fieldKind = iota // raw: JSON written verbatim
	fieldString                  // str
	fieldInt                     // num
	fieldAny                     // val: anything json.Marshal takes
)

// bodyField is one member of a backend request body.
type bodyField struct {
	name string
	kind fieldKind
	raw  json.RawMessage
	str  string
	num  int64
	val  any
}

// requestBody is a backend request body: one field per name (setting a
// name again replaces it), written with names sorted (encodeBody).
type requestBody []bodyField

func newRequestBody(n int) requestBody { return make(requestBody, 0, n) }

func (b *requestBody) put(f bodyField) {
	for i := range *b {
		if (*b)[i].name == f.name {
			(*b)[i] = f
			return
		}
	}
	*b = append(*b, f)
}

// setRaw sets name to JSON bytes copied verbatim into the body.
func (b *requestBody) setRaw(name string, raw json.RawMessage) {
	b.put(bodyField{name: name, kind: fieldRaw, raw: raw})
}

func (b *requestBody) setString(name, s string) {
	b.put(bodyField{name: name, kind: fieldString, str: s})
}

func (b *requestBody) setInt(name string, n int64) {
	b.put(bodyField{name: name, kind: fieldInt, num: n})
}

// set sets name to any value json.Marshal encodes.
func (b *requestBody) set(name string, v any) {
	b.put(bodyField{name: name, kind: fieldAny, val: v})
}

// get returns name's value as the map body used to hold it:
// json.RawMessage, string, int64 or the value set.
func (b requestBody) get(name string) (any, bool) {
	for _, f := range b {
		if f.name != name {
			continue
		}
		switch f.kind {
		case fieldRaw:
			return f.raw, true
		case fieldString:
			return f.str, true
		case fieldInt:
			return f.num, true
		}
		return f.val, true
	}
	return nil, false
}

// encodeBody writes the backend request body: names sorted (as
// json.Marshal sorts a map's keys), raw values copied verbatim. They were
// cut from a payload jsonscan.Valid accepted, so compacting them again
// would only cost time.
func encodeBody(body requestBody) ([]byte, error) {
	slices.SortFunc(body, func(x, y bodyField) int { return cmp.Compare(x.name, y.name) })
	size := 2
	for _, f := range body {
		size += len(f.name) + 4 + len(f.raw) + len(f.str) + 16
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, f := range body {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonscan.AppendString(b, f.name)
		b = append(b, ':')
		switch f.kind {
		case fieldRaw:
			b = append(b, f.raw...)
		case fieldString:
			b = jsonscan.AppendString(b, f.str)
		case fieldInt:
			b = strconv.AppendInt(b, f.num, 10)
		default:
			if v, ok := f.val.(bool); ok {
				b = strconv.AppendBool(b, v)
				continue
			}
			raw, err := json.Marshal(f.val)
			if err != nil {
				return nil, err
			}
			b = append(b, raw...)
		}
	}
	return append(b, '}'), nil
}
