package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

const (
	mediaJSON = "application/json"
	mediaCBOR = wire.MediaTypeCBOR
)

// Header names in Go's canonical form, so Header.Get/Set need not
// re-canonicalise (and allocate) on every request; on the wire header names
// are case-insensitive.
const (
	hdrTraceID       = "X-Iicp-Trace-Id"       // X-IICP-Trace-Id
	hdrConsumerToken = "X-Iicp-Consumer-Token" // X-IICP-Consumer-Token
	hdrTraceparent   = "Traceparent"           // W3C traceparent
)

// Constant header values shared by every response (never mutated: net/http
// only reads them, and a len==cap slice cannot be appended to in place).
var (
	noStoreValue    = []string{"no-store"}
	nosniffValue    = []string{"nosniff"}
	acceptPostValue = []string{mediaJSON + ", " + mediaCBOR}
	mediaJSONValue  = []string{mediaJSON}
	mediaCBORValue  = []string{mediaCBOR}
)

// writeBody writes an already-encoded body with its status.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	switch contentType {
	case mediaJSON:
		h["Content-Type"] = mediaJSONValue
	case mediaCBOR:
		h["Content-Type"] = mediaCBORValue
	default:
		h.Set("Content-Type", contentType)
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["X-Content-Type-Options"] = nosniffValue
	w.WriteHeader(status)
	w.Write(body)
}

// writeJSON encodes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, wire.NewError(wire.CodeInternal, "encoding the response failed"), false)
		return
	}
	writeBody(w, status, mediaJSON, b)
}

// writeError writes the spec error envelope with the code's status, in
// CBOR when the caller speaks CBOR (httpx.WriteErrorAs).
func writeError(w http.ResponseWriter, e *wire.Error, cbor bool) { httpx.WriteErrorAs(w, e, cbor) }

// setRetryAfter sets Retry-After on a RESPONSE that carries an error
// (httpx's rule: whole seconds from the retry hint, always on a 429).
func setRetryAfter(w http.ResponseWriter, e *wire.Error) { httpx.SetRetryAfter(w, e) }
