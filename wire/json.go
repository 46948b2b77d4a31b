package wire

import (
	"bytes"
	"encoding/json"
	"errors"
)

// JSON decoding limits.
const (
	// MaxCallBytes caps a JSON or string-keyed CBOR CALL body. The spec gives
	// no HTTP number; 4 MiB admits long chat histories and small inline images
	// while bounding what one request can pin in memory (the native frame cap
	// is 16 MiB, iicp-framing.md §2, and CALL payloads there are ≤ 1 MiB
	// compressed). HTTP transports should cap their body reader at this value.
	MaxCallBytes = 4 << 20
	// MaxControlBytes caps REGISTER, HEARTBEAT and RESPONSE bodies other than
	// task results (64 KiB: the largest control message, a REGISTER with 64
	// capabilities, is a few KiB).
	MaxControlBytes = 64 << 10
	// MaxResponseBytes caps a RESPONSE body (results are as large as payloads).
	MaxResponseBytes = MaxCallBytes
	// MaxNesting bounds JSON and CBOR nesting depth. Chat payloads with tool
	// schemas nest ~10 deep; 64 leaves room without stack-depth abuse.
	MaxNesting = 64
)

// Unknown-field policy (docs/spec-decisions.md, "wire: unknown fields"):
// unknown object members are ignored at every level, as iicp-cbor-wire.md §7.5
// and iicp-framing.md §4.16 require of receivers; task.json's
// additionalProperties:false constrains senders. Deployed SDKs add members
// such as iicp_conf, sdk_language or cip and must keep working. Duplicate
// members are rejected (a silent last-wins would let two parsers disagree).

// DecodeCallJSON decodes a JSON CALL body (POST /v1/task) and validates it
// with ValidateCall. Errors are validation_error (422) or payload_too_large
// (413); messages never echo the input.
// The common CALL shape is decoded by decodeCallFast in one walk that
// also makes checkJSON's checks; anything else by checkJSON then
// encoding/json, with the same result (FuzzDecodeCallFast).
func DecodeCallJSON(b []byte) (*Call, *Error) {
	c := new(Call)
	// The fast walk checks what checkJSON checks as it goes; whatever it
	// declines takes the full path, errors included.
	if len(b) > MaxCallBytes || !decodeCallFast(b, c) {
		if err := checkJSON(b, MaxCallBytes); err != nil {
			return nil, err
		}
		*c = Call{}
		if err := json.Unmarshal(b, c); err != nil {
			return nil, jsonError(err)
		}
	}
	if err := ValidateCall(c); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeRegisterJSON decodes and validates a REGISTER body (POST /v1/register).
func DecodeRegisterJSON(b []byte) (*RegisterRequest, *Error) {
	return decodeChecked(b, MaxControlBytes, ValidateRegister)
}

// DecodeHeartbeatJSON decodes and validates a HEARTBEAT body (POST /v1/heartbeat).
func DecodeHeartbeatJSON(b []byte) (*Heartbeat, *Error) {
	return decodeChecked(b, MaxControlBytes, ValidateHeartbeat)
}

// DecodeResponseJSON decodes a RESPONSE body (the caller side of /v1/task).
// It checks shape only: status enum, result/error consistency. The common
// successful shape is decoded by decodeResponseFast; anything else by
// encoding/json, with the same result (FuzzDecodeResponseFast).
func DecodeResponseJSON(b []byte) (*Response, *Error) {
	if err := checkJSON(b, MaxResponseBytes); err != nil {
		return nil, err
	}
	r := new(Response)
	if !decodeResponseFast(b, r) {
		*r = Response{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, jsonError(err)
		}
	}
	if err := checkResponse(r); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeChecked is decodeJSON into a fresh T followed by check; a message
// is returned only when both pass.
func decodeChecked[T any](b []byte, maxBytes int, check func(*T) *Error) (*T, *Error) {
	var v T
	if err := decodeJSON(b, maxBytes, &v); err != nil {
		return nil, err
	}
	if err := check(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

// EncodeJSON renders v (a Call, Response, Envelope, ...) as compact JSON.
func EncodeJSON(v any) ([]byte, error) { return json.Marshal(v) }

func checkResponse(r *Response) *Error {
	if r.Lifecycle != nil {
		if err := r.Lifecycle.check(r.Status); err != nil {
			return err
		}
	}
	switch r.Status {
	case StatusSuccess:
	case StatusPartial:
		if r.Lifecycle == nil {
			return invalid("status", "partial needs the service-lifecycle profile")
		}
	case StatusError, StatusTimeout:
		if r.Error == nil || r.Error.Code == "" {
			return invalid("error", "is required when status is "+r.Status)
		}
	default:
		return invalid("status", "must be success, error or timeout")
	}
	return nil
}

// decodeJSON enforces the size cap, the nesting bound, duplicate-member
// rejection and strict types, then unmarshals b into v.
func decodeJSON(b []byte, maxBytes int, v any) *Error {
	if err := checkJSON(b, maxBytes); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// checkJSON enforces the size cap and runs scanJSON.
func checkJSON(b []byte, maxBytes int) *Error {
	if len(b) > maxBytes {
		return NewError(CodePayloadTooLarge, "request body exceeds the size limit")
	}
	return scanJSON(b, MaxNesting)
}

// jsonError maps an encoding/json error to a validation_error naming the
// field, without quoting the offending value.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		f := te.Field
		if f == "" {
			f = "body"
		}
		return invalid(f, "has the wrong JSON type (want "+te.Type.String()+")")
	}
	return NewError(CodeValidationError, "body is not valid JSON").WithField("body")
}

// scanJSON is a single allocation-free pass that checks JSON syntax, the
// top-level value is an object, nesting ≤ maxDepth, and no object repeats a
// member name at the top two levels (where the CALL's meaning lives; payload
// contents are passed through opaque). It runs before encoding/json so
// hostile depth never reaches the recursive decoder.
func scanJSON(b []byte, maxDepth int) *Error {
	s := jsonScanner{b: b, maxDepth: maxDepth}
	s.skipWS()
	if s.i >= len(b) || b[s.i] != '{' {
		return invalid("body", "must be a JSON object")
	}
	if err := s.value(0); err != nil {
		return err
	}
	s.skipWS()
	if s.i != len(b) {
		return invalid("body", "has trailing data after the JSON object")
	}
	return nil
}

type jsonScanner struct {
	b        []byte
	i        int
	maxDepth int
}

var errJSONSyntax = NewError(CodeValidationError, "body is not valid JSON")

func (s *jsonScanner) syntax() *Error {
	return &Error{Code: errJSONSyntax.Code, Message: errJSONSyntax.Message, Field: "body"}
}

func (s *jsonScanner) skipWS() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) value(depth int) *Error {
	s.skipWS()
	if s.i >= len(s.b) {
		return s.syntax()
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, ok := s.str()
		if !ok {
			return s.syntax()
		}
		return nil
	default:
		return s.literal()
	}
}

func (s *jsonScanner) tooDeep(depth int) *Error {
	if depth > s.maxDepth {
		return invalid("body", "nests deeper than 64 levels")
	}
	return nil
}

func (s *jsonScanner) object(depth int) *Error {
	if err := s.tooDeep(depth); err != nil {
		return err
	}
	s.i++ // '{'
	// Duplicate detection only at depth ≤ 2 (top level and e.g. constraints);
	// member names there are few, so a quadratic compare is cheap and keeps
	// the scan allocation-free.
	var names [32][2]int
	n := 0
	s.skipWS()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.skipWS()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax()
		}
		start, end, ok := s.str()
		if !ok {
			return s.syntax()
		}
		if depth <= 2 {
			for k := 0; k < n; k++ {
				if bytes.Equal(s.b[names[k][0]:names[k][1]], s.b[start:end]) {
					return invalid("body", "repeats an object member")
				}
			}
			if n < len(names) {
				names[n] = [2]int{start, end}
				n++
			}
		}
		s.skipWS()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax()
		}
		s.i++
		if err := s.value(depth); err != nil {
			return err
		}
		if done, err := s.separator('}'); done || err != nil {
			return err
		}
	}
}

func (s *jsonScanner) array(depth int) *Error {
	if err := s.tooDeep(depth); err != nil {
		return err
	}
	s.i++ // '['
	s.skipWS()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		if done, err := s.separator(']'); done || err != nil {
			return err
		}
	}
}

// str consumes a string starting at '"' and returns the raw content bounds.
// Escapes are skipped, not decoded: equal raw names are duplicates; names
// equal only after unescaping are left to encoding/json's last-wins.
// separator consumes what follows a member or element: a ',' (more to
// come) or the closing byte (done).
func (s *jsonScanner) separator(closing byte) (done bool, err *Error) {
	s.skipWS()
	if s.i >= len(s.b) {
		return false, s.syntax()
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return false, nil
	case closing:
		s.i++
		return true, nil
	}
	return false, s.syntax()
}

func (s *jsonScanner) str() (start, end int, ok bool) {
	s.i++
	start = s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			end = s.i
			s.i++
			return start, end, true
		case c == '\\':
			s.i += 2
		case c < 0x20:
			return 0, 0, false
		default:
			s.i++
		}
	}
	return 0, 0, false
}

// literal consumes a number, true, false or null; encoding/json does the
// exact grammar check afterwards.
func (s *jsonScanner) literal() *Error {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	if s.i == start {
		return s.syntax()
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	b := bytes.TrimLeft(raw, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
