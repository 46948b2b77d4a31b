package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// nativeResponse is the RESPONSE map (iicp-framing.md §4.4). Keys 15, 100
// and 101 are the deployed SDK dialect (call_id, numeric error code, error
// message) and are read only by the compat decoder; the encoder never sets
// them.
type nativeResponse struct {
	ProtocolVersion *uint64         `cbor:"1,keyasint,omitempty"`
	SessionID       string          `cbor:"2,keyasint,omitempty"`
	CallID          string          `cbor:"3,keyasint,omitempty"`
	Status          string          `cbor:"4,keyasint,omitempty"`
	Result          cbor.RawMessage `cbor:"5,keyasint,omitempty"`
	Error           *NativeError    `cbor:"6,keyasint,omitempty"`
	TokensUsed      *uint64         `cbor:"7,keyasint,omitempty"`
	DurationMs      *uint64         `cbor:"8,keyasint,omitempty"`
	TraceID         []byte          `cbor:"9,keyasint,omitempty"`
	CreditsCharged  *uint64         `cbor:"10,keyasint,omitempty"`
	NodeID          string          `cbor:"11,keyasint,omitempty"`
	IsFinal         *bool           `cbor:"12,keyasint,omitempty"`
	Lifecycle       cbor.RawMessage `cbor:"13,keyasint,omitempty"`

	LegacyCallID  string          `cbor:"15,keyasint,omitempty"`
	LegacyErrCode cbor.RawMessage `cbor:"100,keyasint,omitempty"`
	LegacyErrMsg  string          `cbor:"101,keyasint,omitempty"`
}

// NativeError is the RESPONSE error map {1: code, 2: message}.
type NativeError struct {
	Code    string `cbor:"1,keyasint"`
	Message string `cbor:"2,keyasint,omitempty"`
}

// EncodeResponseNative renders r as a deterministic integer-keyed RESPONSE
// payload. TaskID, model_used and the capacity hints have no native key and
// are not carried; the caller correlates by session_id/call_id.
// The direct writer (cbor_native_fast.go) renders the map; the reflective
// encoder is the reference it matches byte for byte.
func EncodeResponseNative(r *Response) ([]byte, error) {
	n, err := nativeResponseOf(r)
	if err != nil {
		return nil, err
	}
	if b, ok := appendNativeResponse(nil, &n); ok {
		return b, nil
	}
	return encodeNativeRef(&n)
}

// nativeResponseOf maps r to the integer-keyed RESPONSE map.
func nativeResponseOf(r *Response) (nativeResponse, error) {
	t := true
	n := nativeResponse{
		ProtocolVersion: u64(uint64(FramingVersion)),
		SessionID:       orDefault(r.SessionID, r.TaskID),
		CallID:          orDefault(r.CallID, r.TaskID),
		Status:          r.Status,
		TokensUsed:      u64(uint64(max(r.Metrics.TokensUsed, 0))),
		DurationMs:      u64(uint64(max(r.Metrics.LatencyMs, 0))),
		NodeID:          r.NodeID,
		IsFinal:         &t,
	}
	if r.Error != nil {
		n.Error = &NativeError{Code: string(r.Error.Code), Message: r.Error.Message}
	}
	if l := r.Lifecycle; l != nil {
		// Profile-only key 13; key 12 mirrors the envelope (§4.4.2).
		b, err := encMode.Marshal(l)
		if err != nil {
			return nativeResponse{}, err
		}
		n.Lifecycle, n.IsFinal = b, &l.IsFinal
	}
	if len(r.Result) > 0 && !isJSONNull(r.Result) {
		res, err := jsonToCBOR(r.Result)
		if err != nil {
			return nativeResponse{}, err
		}
		n.Result = res
	}
	return n, nil
}

// DecodeResponseNative decodes a strict spec-form RESPONSE payload. TaskID is
// left empty: the caller sets it from its CALL. Lifecycle partials are
// rejected because the service-lifecycle profile is not negotiated.
func DecodeResponseNative(b []byte) (*Response, *Error) {
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	return decodeResponseNative(b, false, false)
}

// DecodeResponseNativeLifecycle decodes a strict RESPONSE on a task stream
// that negotiated the service-lifecycle profile: key 13 and is_final=false
// partials are allowed, and must agree with the status (§4.4.2).
func DecodeResponseNativeLifecycle(b []byte) (*Response, *Error) {
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	return decodeResponseNative(b, false, true)
}

// DecodeResponseNativeCompat also accepts the deployed SDK dialect:
// unsorted maps, call_id under 15, errors under 100 (number) / 101
// (message), no status key, result as a bstr of CBOR or JSON.
func DecodeResponseNativeCompat(b []byte) (*Response, *Error) {
	return decodeResponseNative(b, true, false)
}

func decodeResponseNative(b []byte, compat, lifecycle bool) (*Response, *Error) {
	if len(b) > MaxFramePayload {
		return nil, NewError(CodePayloadTooLarge, "RESPONSE exceeds the frame size limit")
	}
	if len(b) == 0 || b[0]>>5 != 5 {
		return nil, cborErr("RESPONSE must be a CBOR map")
	}
	n, werr := unmarshalNativeResponse(b)
	if werr != nil {
		return nil, werr
	}
	if len(n.Lifecycle) > 0 && !lifecycle {
		return nil, nativeInvalid("lifecycle", "is profile-only and the profile was not negotiated")
	}
	if n.IsFinal != nil && !*n.IsFinal && len(n.Lifecycle) == 0 {
		return nil, nativeInvalid("is_final", "must be true without the service-lifecycle profile")
	}
	if n.TraceID != nil && len(n.TraceID) != 16 {
		e := nativeInvalid("trace_id", "must be exactly 16 bytes")
		e.close = CloseProtocolError
		return nil, e
	}
	r := &Response{SessionID: n.SessionID, CallID: n.CallID, Status: n.Status, NodeID: n.NodeID}
	if len(n.Lifecycle) > 0 {
		var l Lifecycle
		if err := decMode.Unmarshal(n.Lifecycle, &l); err != nil {
			return nil, nativeInvalid("lifecycle", "is not a lifecycle envelope")
		}
		if n.IsFinal == nil || *n.IsFinal != l.IsFinal {
			return nil, nativeInvalid("is_final", "must equal the lifecycle envelope's is_final")
		}
		r.Lifecycle = &l
	}
	if n.TokensUsed != nil {
		r.Metrics.TokensUsed = clampInt64(*n.TokensUsed)
	}
	if n.DurationMs != nil {
		r.Metrics.LatencyMs = clampInt64(*n.DurationMs)
	}
	if n.Error != nil {
		r.Error = &Error{Code: Code(n.Error.Code), Message: n.Error.Message}
	}
	if compat {
		if err := applyLegacyResponse(n, r); err != nil {
			return nil, err
		}
	}
	if len(n.Result) > 0 {
		res, err := nativeResult(n.Result)
		if err != nil {
			return nil, err
		}
		r.Result = res
	}
	if err := checkResponse(r); err != nil {
		err.close = CloseInvalidPayload
		return nil, err
	}
	if r.Error != nil {
		r.Code = r.Error.Code
	}
	return r, nil
}

// unmarshalNativeResponse reads the RESPONSE map: the direct reader for
// plain maps, else the reflective reference (unmarshalNativeResponseRef).
func unmarshalNativeResponse(b []byte) (*nativeResponse, *Error) {
	if n, ok := fastNativeResponse(b); ok {
		return n, nil
	}
	return unmarshalNativeResponseRef(b)
}

func unmarshalNativeResponseRef(b []byte) (*nativeResponse, *Error) {
	var n nativeResponse
	if err := decMode.Unmarshal(b, &n); err != nil {
		return nil, cborTypeError(err)
	}
	return &n, nil
}

func clampInt64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// legacyStatusCodes maps the deployed dialect's numeric key-100 codes
// (HTTP-like statuses) to catalogue codes.
var legacyStatusCodes = map[int64]Code{
	400: CodeValidationError, 401: CodeUnauthorized, 403: CodeForbidden,
	404: CodeNotFound, 409: CodeConflict, 413: CodePayloadTooLarge,
	422: CodeValidationError, 429: CodeCapacityExceeded, 500: CodeInternal,
	502: CodeBackendError, 503: CodeUnavailable, 504: CodeTaskTimeout,
}

func applyLegacyResponse(n *nativeResponse, r *Response) *Error {
	if r.CallID == "" {
		r.CallID = n.LegacyCallID
	}
	if len(n.LegacyErrCode) > 0 && r.Error == nil {
		code := CodeInternal
		var num int64
		var text string
		switch {
		case decMode.Unmarshal(n.LegacyErrCode, &num) == nil:
			if c, ok := legacyStatusCodes[num]; ok {
				code = c
			}
		case decMode.Unmarshal(n.LegacyErrCode, &text) == nil && len(text) <= 64:
			code = Code(text)
		default:
			return nativeInvalid("error", "code must be a number or text")
		}
		// Deployed nodes prefix numbered codes in the message ("IICP-E021: ...").
		if m := n.LegacyErrMsg; len(m) >= 9 && strings.HasPrefix(m, "IICP-E") && allDigits(m[6:9]) {
			code = Code(m[:9])
		}
		r.Error = &Error{Code: code, Message: n.LegacyErrMsg}
	}
	if r.Status == "" {
		switch {
		case r.Error == nil:
			r.Status = StatusSuccess
		case r.Error.Code == CodeTaskTimeout:
			r.Status = StatusTimeout
		default:
			r.Status = StatusError
		}
	}
	return nil
}

// nativeResult turns key 5 into JSON: a CBOR data item directly, or a bstr
// holding JSON text or one encoded CBOR item (deployed nodes CBOR-encode the
// result into a bstr).
func nativeResult(raw cbor.RawMessage) (json.RawMessage, *Error) {
	bad := errResultModel
	if raw[0]>>5 != 2 {
		j, err := cborToJSON(raw)
		if err != nil {
			return nil, bad()
		}
		return j, nil
	}
	var s []byte
	if err := decMode.Unmarshal(raw, &s); err != nil {
		return nil, bad()
	}
	if t := bytes.TrimLeft(s, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(s) {
		return s, nil
	}
	if decMode.Wellformed(s) == nil {
		if j, err := cborToJSON(s); err == nil {
			return j, nil
		}
	}
	return nil, bad()
}

// ---- session messages -------------------------------------------------------

// Init is the INIT payload (iicp-framing.md §4.5). NodeToken is LOG-FORBIDDEN.
type Init struct {
	ProtocolVersion uint64   `cbor:"1,keyasint"`
	MinVersion      uint64   `cbor:"2,keyasint"`
	NodeID          string   `cbor:"3,keyasint,omitempty"`
	NodeToken       string   `cbor:"4,keyasint,omitempty"`
	Capabilities    []string `cbor:"5,keyasint,omitempty"`
	Compression     []string `cbor:"6,keyasint,omitempty"`
	MaxFrameSize    uint64   `cbor:"7,keyasint,omitempty"`
}

// Ack is the ACK payload (iicp-framing.md §4.6).
type Ack struct {
	ProtocolVersion uint64   `cbor:"1,keyasint"`
	NodeID          string   `cbor:"2,keyasint,omitempty"`
	Capabilities    []string `cbor:"3,keyasint,omitempty"`
	Compression     string   `cbor:"4,keyasint,omitempty"`
	MaxFrameSize    uint64   `cbor:"5,keyasint,omitempty"`
	ServerTime      uint64   `cbor:"6,keyasint,omitempty"`
}

// Ping is the PING and PONG payload (iicp-framing.md §4.9); a PONG echoes
// Echo verbatim. An empty frame payload is a valid Ping.
type Ping struct {
	Echo []byte `cbor:"1,keyasint,omitempty"`
}

// MaxPingEcho is the echo_data cap (iicp-framing.md §4.9).
const MaxPingEcho = 64

// CloseMsg is the CLOSE payload (iicp-framing.md §4.8).
type CloseMsg struct {
	Reason    CloseReason `cbor:"1,keyasint,omitempty"`
	Message   string      `cbor:"2,keyasint,omitempty"`
	SessionID string      `cbor:"3,keyasint,omitempty"`
}

// EncodeNative renders a session message (Init, Ack, Ping, CloseMsg,
// NativeError) as deterministic integer-keyed CBOR.
func EncodeNative(v any) ([]byte, error) { return encMode.Marshal(v) }

// DecodeNative decodes a session message payload into v (a pointer to Init,
// Ack, Ping, CloseMsg or NativeError). strict rejects non-deterministic
// CBOR (iicp-framing.md §4.1); the compat path (strict=false) accepts the
// unsorted maps deployed SDKs emit. Field rules are checked per type.
func DecodeNative(b []byte, v any, strict bool) *Error {
	if len(b) > MaxFramePayload {
		return NewError(CodePayloadTooLarge, "message exceeds the frame size limit")
	}
	if p, ok := v.(*Ping); ok && len(b) == 0 {
		*p = Ping{}
		return nil
	}
	if strict {
		if err := checkDeterministic(b); err != nil {
			return err
		}
	}
	if len(b) == 0 || b[0]>>5 != 5 {
		return cborErr("message must be a CBOR map")
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return cborTypeError(err)
	}
	return checkSessionMsg(v)
}

func checkSessionMsg(v any) *Error {
	switch m := v.(type) {
	case *Init:
		if m.ProtocolVersion == 0 || m.MinVersion == 0 || m.MinVersion > m.ProtocolVersion {
			return nativeInvalid("protocol_version", "must be >= min_version >= 1")
		}
	case *Ack:
		if m.ProtocolVersion == 0 {
			return nativeInvalid("protocol_version", "must be >= 1")
		}
	case *Ping:
		if len(m.Echo) > MaxPingEcho {
			return nativeInvalid("echo_data", "must be at most 64 bytes")
		}
	case *CloseMsg:
		if len(m.Reason) > 64 || len(m.Message) > 1024 {
			return nativeInvalid("reason", "is too long")
		}
	}
	return nil
}

// String renders a native error code for logs (never the message body).
func (e *NativeError) String() string { return "native error " + strconv.Quote(e.Code) }

// errResultModel and errPayloadObject build their errors on demand: the
// decoders' success path allocates none.
func errResultModel() *Error   { return nativeInvalid("result", "must be in the JSON data model") }
func errPayloadObject() *Error { return nativeInvalid("payload", "must be a JSON object") }
