package httpx

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Media types the error writer speaks.
const (
	MediaJSON = "application/json"
	MediaCBOR = wire.MediaTypeCBOR
)

// fallbackError is written when even the error envelope fails to encode.
var fallbackError = []byte(`{"error":{"code":"internal_error","message":"encoding the error failed"},"code":"internal_error"}`)

// WriteBody writes an already-encoded body with status, Content-Length and
// nosniff.
func WriteBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteJSON encodes v as JSON with status. v is always one of our own
// types; should encoding still fail, the caller gets a structured 500.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, wire.NewError(wire.CodeInternal, "encoding the response failed"))
		return
	}
	WriteBody(w, status, MediaJSON, append(b, '\n'))
}

// WriteError is the one IICP error writer: the spec envelope
// {"error":{…},"code"} with the code's status as JSON, Cache-Control
// no-store and Retry-After when the error carries a retry hint (always on
// a 429, iicp-semantics.md §2.2).
func WriteError(w http.ResponseWriter, e *wire.Error) { WriteErrorAs(w, e, false) }

// WriteErrorAs is WriteError in CBOR when cbor is set and the error
// encodes (iicp-cbor-wire.md §5), JSON otherwise.
func WriteErrorAs(w http.ResponseWriter, e *wire.Error, cbor bool) {
	SetRetryAfter(w, e)
	w.Header().Set("Cache-Control", "no-store")
	if cbor {
		if b, err := wire.EncodeErrorCBOR(e); err == nil {
			WriteBody(w, e.Status(), MediaCBOR, b)
			return
		}
	}
	b, err := json.Marshal(e.Envelope())
	if err != nil {
		b = fallbackError
	}
	WriteBody(w, e.Status(), MediaJSON, b)
}

// RateLimited writes 429 rate_limited with retry_after and Retry-After of
// wait rounded up to whole seconds (at least 1).
func RateLimited(w http.ResponseWriter, msg string, wait time.Duration) {
	e := wire.NewError(wire.CodeRateLimited, msg)
	e.RetryAfter = CeilSeconds(wait)
	WriteError(w, e)
}

// CeilSeconds rounds d up to whole seconds, at least 1.
func CeilSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// SetRetryAfter sets Retry-After in whole seconds from the error's retry
// hint; a 429 always carries one (at least 1 s).
func SetRetryAfter(w http.ResponseWriter, e *wire.Error) {
	secs := max(e.RetryAfter, (e.RetryAfterMs+999)/1000)
	if secs <= 0 && e.Status() != http.StatusTooManyRequests {
		return
	}
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}
