package wire

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Native CALL/RESPONSE integer-keyed CBOR (iicp-framing.md §4.3, §4.4).
//
// Mapping decisions (docs/spec-decisions.md, "wire: native CBOR"):
//   - payload (key 5) is a bstr holding the UTF-8 JSON text of the payload
//     object — what deployed SDKs send — so the engine sees the same bytes on
//     every transport;
//   - timeout (key 6) is whole seconds: ceil(timeout_ms/1000) on encode,
//     seconds×1000 on decode (ValidateCall then enforces the 300000 ms cap);
//   - priority (key 7): low↔0, normal↔1, high↔2, critical↔3;
//   - trace_id (key 13) is the 16 bytes of Trace.TraceID;
//   - task_id travels in key 24; session_id (2) and call_id (15) default to
//     the task_id when the Call leaves them empty;
//   - model, consensus and trace.origin_node have no key and ride in the
//     metadata map (key 23) under those names;
//   - RESPONSE result (key 5) is the CBOR form of the JSON result (the spec
//     allows "bstr or map"; deployed clients decode a map directly).

// Native limits.
const (
	MinNativeTimeoutS = 1    // iicp-framing.md §4.3 key 6
	MaxNativeTimeoutS = 3600 // iicp-framing.md §4.3 key 6
	// CompatDefaultTimeoutMs is used when a deployed-dialect CALL has no key 6.
	// 30 s is the SDK clients' default request timeout.
	CompatDefaultTimeoutMs = 30000
	maxMetadata            = 64
)

type nativeCall struct {
	ProtocolVersion *uint64           `cbor:"1,keyasint,omitempty"`
	SessionID       string            `cbor:"2,keyasint,omitempty"`
	Intent          string            `cbor:"3,keyasint,omitempty"`
	ProviderID      string            `cbor:"4,keyasint,omitempty"`
	Payload         cbor.RawMessage   `cbor:"5,keyasint,omitempty"`
	Timeout         *uint64           `cbor:"6,keyasint,omitempty"`
	Priority        *uint64           `cbor:"7,keyasint,omitempty"`
	Credits         *uint64           `cbor:"8,keyasint,omitempty"`
	RoutingHint     string            `cbor:"9,keyasint,omitempty"`
	SchedulingHint  string            `cbor:"10,keyasint,omitempty"`
	AuthToken       string            `cbor:"11,keyasint,omitempty"`
	RetryPolicy     *nativeRetry      `cbor:"12,keyasint,omitempty"`
	TraceID         []byte            `cbor:"13,keyasint,omitempty"`
	ParentSpan      []byte            `cbor:"14,keyasint,omitempty"`
	CallID          string            `cbor:"15,keyasint,omitempty"`
	IdempotencyKey  string            `cbor:"16,keyasint,omitempty"`
	MaxTokens       *uint64           `cbor:"17,keyasint,omitempty"`
	QoS             string            `cbor:"18,keyasint,omitempty"`
	Region          string            `cbor:"20,keyasint,omitempty"`
	Capabilities    []string          `cbor:"21,keyasint,omitempty"`
	TTL             *uint64           `cbor:"22,keyasint,omitempty"`
	Metadata        map[string]string `cbor:"23,keyasint,omitempty"`
	TaskID          string            `cbor:"24,keyasint,omitempty"`
}

// nativeFieldNames names CALL keys in errors (iicp-framing.md §4.3).
var nativeFieldNames = map[string]string{
	"1": "protocol_version", "2": "session_id", "3": "intent", "4": "provider_id", "5": "payload",
	"6": "timeout", "7": "priority", "8": "credits", "9": "routing_hint", "10": "scheduling_hint",
	"11": "auth_token", "12": "retry_policy", "13": "trace_id", "14": "parent_span", "15": "call_id",
	"16": "idempotency_key", "17": "max_tokens", "18": "qos", "20": "region", "21": "capabilities",
	"22": "ttl", "23": "metadata", "24": "task_id",
}

type nativeRetry struct {
	MaxRetries uint64 `cbor:"1,keyasint"`
	BackoffMs  uint64 `cbor:"2,keyasint"`
}

var priorityToNative = map[string]uint64{PriorityLow: 0, PriorityNormal: 1, PriorityHigh: 2, PriorityCritical: 3}
var nativeToPriority = [...]string{PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical}

func u64(v uint64) *uint64 { return &v }

// EncodeCallNative renders c as the deterministic integer-keyed CBOR payload
// of a CALL frame. c should already have passed ValidateCall.
// The direct writer (cbor_native_fast.go) renders the map; the reflective
// encoder is the reference it matches byte for byte.
func EncodeCallNative(c *Call) ([]byte, error) {
	n, err := nativeCallOf(c)
	if err != nil {
		return nil, err
	}
	if b, ok := appendNativeCall(nil, &n); ok {
		return b, nil
	}
	return encodeNativeRef(&n)
}

// encodeNativeRef is the reflective reference encoder of the native maps.
func encodeNativeRef(v any) ([]byte, error) { return encMode.Marshal(v) }

// nativeCallOf maps c to the integer-keyed CALL map.
func nativeCallOf(c *Call) (nativeCall, error) {
	if len(c.Conf) > 0 {
		return nativeCall{}, errors.New("encoding native CALL: IICP-CX envelopes need the CONF_ENCRYPTED map form, not supported")
	}
	if !isJSONObject(c.Payload) {
		return nativeCall{}, errors.New("encoding native CALL: payload is not a JSON object")
	}
	n := nativeCall{
		ProtocolVersion: u64(uint64(FramingVersion)),
		SessionID:       orDefault(c.SessionID, c.TaskID),
		Intent:          c.Intent,
		Payload:         appendHead(make([]byte, 0, len(c.Payload)+9), 2, uint64(len(c.Payload))),
		Timeout:         u64(uint64((max(c.Constraints.TimeoutMs, 0) + 999) / 1000)),
		CallID:          orDefault(c.CallID, c.TaskID),
		IdempotencyKey:  c.IdempotencyKey,
		QoS:             c.Constraints.QoS,
		Region:          c.Constraints.Region,
		TaskID:          c.TaskID,
		// Required profiles travel as required node capabilities (key 21;
		// docs/spec-decisions.md ## service-lifecycle profile).
		Capabilities: c.Constraints.RequiredProfiles,
	}
	if p, ok := priorityToNative[c.Constraints.Priority]; ok {
		n.Priority = &p
	}
	if c.Constraints.MaxTokens > 0 {
		n.MaxTokens = u64(uint64(c.Constraints.MaxTokens))
	}
	if c.Auth != nil {
		n.AuthToken = c.Auth.NodeToken
	}
	md := map[string]string{}
	if c.Trace != nil {
		if tb, ok := TraceIDBytes(c.Trace.TraceID); ok {
			n.TraceID = tb[:]
		}
		if c.Trace.OriginNode != "" {
			md["origin_node"] = c.Trace.OriginNode
		}
	}
	if c.Model != "" {
		md["model"] = c.Model
	}
	if c.Constraints.Consensus != "" {
		md["consensus"] = c.Constraints.Consensus
	}
	if len(md) > 0 {
		n.Metadata = md
	}
	n.Payload = append(n.Payload, c.Payload...)
	return n, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// DecodeCallNative decodes a strict (spec-form) native CALL payload:
// deterministic CBOR, keys 1, 2 (UUID v4), 3, 5 (bstr JSON object) and 6
// present, §4.16 field rules, then ValidateCall. Use DecodeCallNativeCompat
// for peers speaking the deployed SDK dialect.
func DecodeCallNative(b []byte) (*Call, *Error) {
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	n, err := unmarshalNativeCall(b)
	if err != nil {
		return nil, err
	}
	switch {
	case n.ProtocolVersion == nil || *n.ProtocolVersion != uint64(FramingVersion):
		return nil, nativeInvalid("protocol_version", "must be 1")
	case !ValidUUIDv4(n.SessionID):
		return nil, nativeInvalid("session_id", "must be a UUID version 4")
	case n.Timeout == nil:
		return nil, nativeInvalid("timeout", "is required")
	case len(n.Payload) == 0 || n.Payload[0]>>5 != 2:
		return nil, nativeInvalid("payload", "must be a byte string holding a JSON object")
	}
	return finishNativeCall(n, false)
}

// DecodeCallNativeCompat decodes a native CALL as deployed IICP SDK nodes
// send it (iicp-client-python/-rust iicp_tcp: keys 2/3/5/15 only, unsorted
// maps, payload as JSON bytes, a CBOR map or text, no timeout). It is the
// documented exception to the §4.1 determinism rule; well-formedness,
// duplicate keys, limits, §4.16 field rules and ValidateCall still apply.
// A missing timeout becomes CompatDefaultTimeoutMs.
func DecodeCallNativeCompat(b []byte) (*Call, *Error) {
	n, err := unmarshalNativeCall(b)
	if err != nil {
		return nil, err
	}
	return finishNativeCall(n, true)
}

func unmarshalNativeCall(b []byte) (*nativeCall, *Error) {
	if len(b) > MaxFramePayload {
		return nil, NewError(CodePayloadTooLarge, "CALL exceeds the frame size limit")
	}
	if len(b) == 0 || b[0]>>5 != 5 {
		return nil, cborErr("CALL must be a CBOR map")
	}
	if n, ok := fastNativeCall(b); ok {
		return n, nil
	}
	return unmarshalNativeCallRef(b)
}

// unmarshalNativeCallRef is the reflective reference decoder of the CALL
// map (fastNativeCall serves plain maps).
func unmarshalNativeCallRef(b []byte) (*nativeCall, *Error) {
	var n nativeCall
	if err := decMode.Unmarshal(b, &n); err != nil {
		return nil, cborTypeError(err)
	}
	return &n, nil
}

func nativeInvalid(field, msg string) *Error {
	e := invalid(field, msg)
	e.close = CloseInvalidPayload
	return e
}

// finishNativeCall maps the integer-keyed form to a Call and validates it.
func finishNativeCall(n *nativeCall, compat bool) (*Call, *Error) {
	if n.TraceID != nil && len(n.TraceID) != 16 {
		e := nativeInvalid("trace_id", "must be exactly 16 bytes")
		e.close = CloseProtocolError
		return nil, e
	}
	if n.ParentSpan != nil && len(n.ParentSpan) != 8 {
		e := nativeInvalid("parent_span", "must be exactly 8 bytes")
		e.close = CloseProtocolError
		return nil, e
	}
	if len(n.Metadata) > maxMetadata {
		return nil, nativeInvalid("metadata", "has too many entries")
	}
	c := &Call{Intent: n.Intent, SessionID: n.SessionID, CallID: n.CallID,
		IdempotencyKey: n.IdempotencyKey, Model: n.Metadata["model"]}
	c.TaskID = firstNonEmpty(n.TaskID, n.CallID, n.SessionID)
	payload, perr := nativePayload(n.Payload, compat)
	if perr != nil {
		return nil, perr
	}
	c.Payload = payload
	if err := nativeConstraints(n, &c.Constraints, compat); err != nil {
		return nil, err
	}
	if n.AuthToken != "" {
		c.Auth = &Auth{NodeToken: n.AuthToken}
	}
	if n.TraceID != nil || n.Metadata["origin_node"] != "" {
		c.Trace = &Trace{OriginNode: n.Metadata["origin_node"]}
		if n.TraceID != nil {
			c.Trace.TraceID = hex.EncodeToString(n.TraceID)
		}
	}
	if err := ValidateCall(c); err != nil {
		if err.close == "" {
			err.close = CloseInvalidPayload
		}
		return nil, err
	}
	return c, nil
}

func nativeConstraints(n *nativeCall, k *Constraints, compat bool) *Error {
	switch {
	case n.Timeout != nil:
		if *n.Timeout < MinNativeTimeoutS || *n.Timeout > MaxNativeTimeoutS {
			return nativeInvalid("timeout", "must be 1-3600 seconds")
		}
		k.TimeoutMs = int64(*n.Timeout) * 1000
	case compat:
		k.TimeoutMs = CompatDefaultTimeoutMs
	}
	if n.Priority != nil {
		if *n.Priority >= uint64(len(nativeToPriority)) {
			return nativeInvalid("priority", "must be 0-3")
		}
		k.Priority = nativeToPriority[*n.Priority]
	}
	if n.MaxTokens != nil {
		if *n.MaxTokens == 0 || *n.MaxTokens > math.MaxInt64 {
			return nativeInvalid("max_tokens", "must be >= 1")
		}
		k.MaxTokens = int64(*n.MaxTokens)
	}
	k.QoS, k.Region, k.Consensus = n.QoS, n.Region, n.Metadata["consensus"]
	for _, c := range n.Capabilities {
		if strings.HasPrefix(c, "urn:iicp:profile:") {
			k.RequiredProfiles = append(k.RequiredProfiles, c)
		}
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// nativePayload turns key 5 into the JSON payload object. Strict: a bstr of
// JSON. Compat additionally: a CBOR map, text holding JSON, or a bstr
// holding a CBOR-encoded map.
func nativePayload(raw cbor.RawMessage, compat bool) (json.RawMessage, *Error) {
	bad := errPayloadObject
	if len(raw) == 0 {
		return nil, bad()
	}
	switch raw[0] >> 5 {
	case 2, 3: // bstr, tstr
		var s []byte
		if c, ok := bstrContent(raw); ok {
			s = append(make([]byte, 0, len(c)), c...)
		} else if raw[0]>>5 == 2 {
			if err := decMode.Unmarshal(raw, &s); err != nil {
				return nil, bad()
			}
		} else {
			if !compat {
				return nil, bad()
			}
			var t string
			if err := decMode.Unmarshal(raw, &t); err != nil {
				return nil, bad()
			}
			s = []byte(t)
		}
		if isJSONObject(s) && json.Valid(s) {
			return s, nil
		}
		if compat && len(s) > 0 && s[0]>>5 == 5 {
			if j, err := cborToJSON(s); err == nil {
				return j, nil
			}
		}
		return nil, bad()
	case 5:
		if !compat {
			return nil, bad()
		}
		j, err := cborToJSON(raw)
		if err != nil {
			return nil, bad()
		}
		return j, nil
	}
	return nil, bad()
}
