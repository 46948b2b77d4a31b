package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"unicode"

	"github.com/meshnode/meshnode/wire"
)

// Body size caps: REGISTER carries capabilities and extensions, the rest
// are small control messages.
const (
	maxRegisterBody = 256 << 10
	maxSmallBody    = 16 << 10
)

// decodeBody decodes a JSON request body capped at limit into v, mapping
// every failure to a structured error that echoes no input.
//
// The body is read into a pooled buffer and decoded with json.Unmarshal,
// which accepts exactly one JSON value; only a failing body takes the
// json.Decoder path, for the same errors as before. A heartbeat thus no
// longer allocates a decoder and its read buffer.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *wire.Error {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return wire.NewError(wire.CodeUnsupportedMedia, "request body must be application/json")
		}
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer putBodyBuf(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return bodyError(err)
	}
	if json.Unmarshal(buf.Bytes(), v) == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return wire.NewError(wire.CodeValidationError, "request body must hold exactly one JSON object")
	}
	return nil
}

// bodyBufs pools request body buffers; maxPooledBody keeps one large
// REGISTER from pinning its buffer.
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 64 << 10

func putBodyBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyBufs.Put(b)
	}
}

func bodyError(err error) *wire.Error {
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return wire.NewError(wire.CodePayloadTooLarge, "request body too large")
	case errors.Is(err, io.EOF):
		return wire.NewError(wire.CodeValidationError, "request body is empty")
	case errors.As(err, &typeErr):
		return wire.NewError(wire.CodeValidationError, "wrong JSON type for a field").WithField(jsonPath(typeErr.Field))
	default:
		return wire.NewError(wire.CodeValidationError, "request body is not valid JSON")
	}
}

// jsonPath drops the Go names of embedded structs from a decoder field
// path ("RegisterRequest.limits.max_concurrent" → "limits.max_concurrent").
func jsonPath(p string) string {
	parts := strings.Split(p, ".")
	out := parts[:0]
	for _, s := range parts {
		if s != "" && !unicode.IsUpper(rune(s[0])) {
			out = append(out, s)
		}
	}
	return strings.Join(out, ".")
}
