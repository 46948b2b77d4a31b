package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// CBOR decoding limits (shared by the string-keyed HTTP codec and the
// integer-keyed native codec).
const (
	// MaxCBORArray and MaxCBORMap bound element counts. The native envelope
	// is a flat map of ≤ 24 keys; string-keyed HTTP CALLs carry the payload
	// as a map, where 65536 chat messages or object members is far beyond
	// real use.
	MaxCBORArray = 1 << 16
	MaxCBORMap   = 1 << 16
)

// MediaTypeCBOR is the string-keyed CBOR media type (iicp-cbor-wire.md §2.1).
const MediaTypeCBOR = "application/iicp+cbor"

// decMode is the one package-level CBOR decoder: duplicate keys, indefinite
// lengths and invalid UTF-8 are errors; nesting and counts are capped;
// struct fields match case-sensitively only.
var decMode = mustDecMode(cbor.DecOptions{
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	IndefLength:       cbor.IndefLengthForbidden,
	MaxNestedLevels:   MaxNesting,
	MaxArrayElements:  MaxCBORArray,
	MaxMapPairs:       MaxCBORMap,
	UTF8:              cbor.UTF8RejectInvalid,
	FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	DefaultMapType:    reflect.TypeOf(map[string]any(nil)),
	TagsMd:            cbor.TagsAllowed,
})

// encMode emits RFC 8949 §4.2.1 core deterministic CBOR: sorted keys,
// shortest integers and floats, definite lengths.
var encMode = mustEncMode(cbor.CoreDetEncOptions())

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic("wire: invalid CBOR decode options: " + err.Error()) // static options; unreachable
	}
	return m
}

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic("wire: invalid CBOR encode options: " + err.Error()) // static options; unreachable
	}
	return m
}

// cborErr is the error for undecodable CBOR; the session sends
// CLOSE(cbor_decode_error) on native transports (iicp-framing.md §9.6).
func cborErr(msg string) *Error {
	e := invalid("body", msg)
	e.close = CloseCBORDecodeError
	return e
}

// ---- JSON <-> CBOR data-model transcoding ---------------------------------

// jsonToCBOR converts one JSON value to deterministic CBOR. Integers stay
// integers, other numbers become the shortest exact float. The direct
// transcoder (cbor_fast.go) serves plain documents; the rest, and every
// error, is the reference's.
func jsonToCBOR(raw []byte) ([]byte, error) {
	if b, ok := fastJSONToCBOR(raw); ok {
		return b, nil
	}
	return jsonToCBORRef(raw)
}

// jsonToCBORRef is the reference JSON → CBOR transcoder (via `any`).
func jsonToCBORRef(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v, err := numbersToCBOR(v, 0)
	if err != nil {
		return nil, err
	}
	return encMode.Marshal(v)
}

func numbersToCBOR(v any, depth int) (any, error) {
	if depth > MaxNesting {
		return nil, errors.New("nesting too deep")
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, errors.New("number out of range")
		}
		return f, nil
	case map[string]any:
		for k, e := range x {
			c, err := numbersToCBOR(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	case []any:
		for i, e := range x {
			c, err := numbersToCBOR(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	}
	return v, nil
}

// cborToJSON converts one CBOR data item (already known to be well-formed)
// to JSON. Only the JSON data model is accepted: text-keyed maps, arrays,
// text, numbers, booleans and null. Byte strings become base64 text, as
// encoding/json renders []byte; tags, undefined, simple values and
// non-finite floats are rejected because JSON cannot carry them. The
// direct transcoder (cbor_fast.go) serves plain items; the rest, and every
// error, is the reference's.
func cborToJSON(item []byte) (json.RawMessage, error) {
	if b, ok := fastCBORToJSON(item); ok {
		return b, nil
	}
	return cborToJSONRef(item)
}

// cborToJSONRef is the reference CBOR → JSON transcoder (via `any`).
func cborToJSONRef(item []byte) (json.RawMessage, error) {
	var v any
	if err := decMode.Unmarshal(item, &v); err != nil {
		return nil, err
	}
	if err := checkJSONModel(v, 0); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep payload text byte-faithful
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

func checkJSONModel(v any, depth int) error {
	if depth > MaxNesting {
		return errors.New("nesting too deep")
	}
	switch x := v.(type) {
	case nil, bool, string, []byte, int64, uint64:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("non-finite number")
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := checkJSONModel(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case []any:
		for _, e := range x {
			if err := checkJSONModel(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("value has no JSON form")
}

// stripRootTag removes an iicp-cbor-wire.md §3 message-root tag
// (65532–65535): receivers MUST accept tagged and untagged roots, while
// senders emit untagged maps (iicp-framing.md §11.3).
func stripRootTag(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xd9 { // major 6, 2-byte tag number
		if n := uint16(b[1])<<8 | uint16(b[2]); n >= 65532 {
			return b[3:]
		}
	}
	return b
}

// ---- string-keyed CBOR for HTTP (iicp-cbor-wire.md) -----------------------

// cborCall is the string-keyed CBOR form of Call: the JSON member names as
// text keys, payload as a CBOR map (§4.1), and the §4.1 top-level trace_id.
type cborCall struct {
	TaskID         string          `cbor:"task_id"`
	Intent         string          `cbor:"intent"`
	Payload        cbor.RawMessage `cbor:"payload,omitempty"`
	Constraints    Constraints     `cbor:"constraints"`
	Auth           *Auth           `cbor:"auth,omitempty"`
	Trace          *Trace          `cbor:"trace,omitempty"`
	TraceID        string          `cbor:"trace_id,omitempty"`
	Billing        *Billing        `cbor:"billing,omitempty"`
	Model          string          `cbor:"model,omitempty"`
	CallID         string          `cbor:"call_id,omitempty"`
	SessionID      string          `cbor:"session_id,omitempty"`
	IdempotencyKey string          `cbor:"idempotency_key,omitempty"`
	Conf           cbor.RawMessage `cbor:"iicp_conf,omitempty"`
}

// EncodeCallCBOR renders c as deterministic string-keyed CBOR.
func EncodeCallCBOR(c *Call) ([]byte, error) {
	cc := cborCall{TaskID: c.TaskID, Intent: c.Intent, Constraints: c.Constraints,
		Auth: c.Auth, Trace: c.Trace, Billing: c.Billing, Model: c.Model, CallID: c.CallID,
		SessionID: c.SessionID, IdempotencyKey: c.IdempotencyKey}
	var err error
	if len(c.Payload) > 0 {
		if cc.Payload, err = jsonToCBOR(c.Payload); err != nil {
			return nil, errors.New("encoding payload: not valid JSON")
		}
	}
	if len(c.Conf) > 0 {
		if cc.Conf, err = jsonToCBOR(c.Conf); err != nil {
			return nil, errors.New("encoding iicp_conf: not valid JSON")
		}
	}
	return encMode.Marshal(&cc)
}

// DecodeCallCBOR decodes a string-keyed CBOR CALL (Content-Type
// application/iicp+cbor), rejecting non-deterministic encodings
// (iicp-cbor-wire.md §1.1), and validates it with ValidateCall.
func DecodeCallCBOR(b []byte) (*Call, *Error) {
	if len(b) > MaxCallBytes {
		return nil, NewError(CodePayloadTooLarge, "request body exceeds the size limit")
	}
	b = stripRootTag(b)
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	if len(b) == 0 || b[0]>>5 != 5 {
		return nil, invalid("body", "must be a CBOR map")
	}
	var cc cborCall
	if err := decMode.Unmarshal(b, &cc); err != nil {
		return nil, cborTypeError(err)
	}
	c := &Call{TaskID: cc.TaskID, Intent: cc.Intent, Constraints: cc.Constraints, Auth: cc.Auth,
		Trace: cc.Trace, Billing: cc.Billing, Model: cc.Model, CallID: cc.CallID,
		SessionID: cc.SessionID, IdempotencyKey: cc.IdempotencyKey}
	if cc.TraceID != "" && (c.Trace == nil || c.Trace.TraceID == "") {
		t := Trace{TraceID: cc.TraceID}
		if c.Trace != nil {
			t.OriginNode = c.Trace.OriginNode
		}
		c.Trace = &t
	}
	var err error
	if len(cc.Payload) > 0 {
		if c.Payload, err = cborToJSON(cc.Payload); err != nil {
			return nil, invalid("payload", "must be a map in the JSON data model")
		}
	}
	if len(cc.Conf) > 0 {
		if c.Conf, err = cborToJSON(cc.Conf); err != nil {
			return nil, invalid("iicp_conf", "must be a map in the JSON data model")
		}
	}
	if verr := ValidateCall(c); verr != nil {
		return nil, verr
	}
	return c, nil
}

// cborResponse is the string-keyed CBOR RESPONSE: the JSON shape, plus the
// iicp-cbor-wire.md §4.2 top-level tokens_used/duration_ms duplicates so
// readers of either form see the metrics.
type cborResponse struct {
	TaskID        string          `cbor:"task_id"`
	Status        string          `cbor:"status"`
	Result        cbor.RawMessage `cbor:"result"`
	Metrics       *Metrics        `cbor:"metrics,omitempty"`
	TokensUsed    *int64          `cbor:"tokens_used,omitempty"`
	DurationMs    *int64          `cbor:"duration_ms,omitempty"`
	ModelUsed     string          `cbor:"model_used,omitempty"`
	GeneratedByAI *bool           `cbor:"generated_by_ai,omitempty"`
	NodeID        string          `cbor:"node_id,omitempty"`
	Error         *Error          `cbor:"error"`
	Code          Code            `cbor:"code,omitempty"`
	SessionID     string          `cbor:"session_id,omitempty"`
	CallID        string          `cbor:"call_id,omitempty"`
}

// EncodeResponseCBOR renders r as deterministic string-keyed CBOR.
func EncodeResponseCBOR(r *Response) ([]byte, error) {
	m := r.Metrics
	cr := cborResponse{TaskID: r.TaskID, Status: r.Status, Metrics: &m,
		TokensUsed: &m.TokensUsed, DurationMs: &m.LatencyMs, ModelUsed: r.ModelUsed,
		GeneratedByAI: r.GeneratedByAI, NodeID: r.NodeID, Error: r.Error, Code: r.Code,
		SessionID: r.SessionID, CallID: r.CallID}
	if len(r.Result) > 0 && !isJSONNull(r.Result) {
		var err error
		if cr.Result, err = jsonToCBOR(r.Result); err != nil {
			return nil, errors.New("encoding result: not valid JSON")
		}
	}
	return encMode.Marshal(&cr)
}

// DecodeResponseCBOR decodes a string-keyed CBOR RESPONSE.
func DecodeResponseCBOR(b []byte) (*Response, *Error) {
	if len(b) > MaxResponseBytes {
		return nil, NewError(CodePayloadTooLarge, "response body exceeds the size limit")
	}
	b = stripRootTag(b)
	if err := checkDeterministic(b); err != nil {
		return nil, err
	}
	var cr cborResponse
	if err := decMode.Unmarshal(b, &cr); err != nil {
		return nil, cborTypeError(err)
	}
	r := &Response{TaskID: cr.TaskID, Status: cr.Status, ModelUsed: cr.ModelUsed,
		GeneratedByAI: cr.GeneratedByAI, NodeID: cr.NodeID, Error: cr.Error, Code: cr.Code,
		SessionID: cr.SessionID, CallID: cr.CallID}
	switch {
	case cr.Metrics != nil:
		r.Metrics = *cr.Metrics
	default:
		if cr.TokensUsed != nil {
			r.Metrics.TokensUsed = *cr.TokensUsed
		}
		if cr.DurationMs != nil {
			r.Metrics.LatencyMs = *cr.DurationMs
		}
	}
	if len(cr.Result) > 0 && !bytes.Equal(cr.Result, []byte{0xf6}) {
		res, err := cborToJSON(cr.Result)
		if err != nil {
			return nil, invalid("result", "must be in the JSON data model")
		}
		r.Result = res
	}
	if err := checkResponse(r); err != nil {
		return nil, err
	}
	return r, nil
}

// EncodeErrorCBOR renders the error envelope as string-keyed CBOR
// (iicp-cbor-wire.md §5).
func EncodeErrorCBOR(e *Error) ([]byte, error) { return encMode.Marshal(e.Envelope()) }

// cborTypeError maps a decoder error to validation_error without echoing input.
func cborTypeError(err error) *Error {
	var te *cbor.UnmarshalTypeError
	if errors.As(err, &te) {
		f := te.StructFieldName
		if i := strings.LastIndexByte(f, '.'); i >= 0 {
			f = f[i+1:]
		}
		if n, ok := nativeFieldNames[f]; ok {
			f = n
		}
		if f == "" {
			f = "body"
		}
		e := invalid(f, "has the wrong CBOR type")
		e.close = CloseInvalidPayload
		return e
	}
	var dup *cbor.DupMapKeyError
	if errors.As(err, &dup) {
		return cborErr("repeats a map key")
	}
	return cborErr("is not valid CBOR")
}
