package wire

import "fmt"

// Code is an IICP error code as it appears on the wire: either a Phase 1 slug
// (iicp-core.md §7) or a numbered IICP-Exxx code. Handlers return codes from
// the catalogue below, never strings typed by hand.
type Code string

// The Phase 1 slug catalogue (iicp-core.md §7, IICP-core-phase1-profile.md §8)
// and the slugs other sections of the spec put on the wire.
const (
	CodeUnauthorized     Code = "unauthorized"
	CodeForbidden        Code = "forbidden"
	CodeNotFound         Code = "not_found"
	CodeConflict         Code = "conflict"
	CodeRateLimited      Code = "rate_limited"
	CodeCapacityExceeded Code = "capacity_exceeded"
	CodeTaskTimeout      Code = "task_timeout"
	CodeBackendError     Code = "backend_error"
	CodeNoConsensus      Code = "no_consensus"
	CodeValidationError  Code = "validation_error"
	CodeUnknownIntent    Code = "unknown_intent"     // PROTO-URN-03
	CodeLivenessFailed   Code = "liveness_failed"    // iicp-dir.md §3.1 (DIR-REG-04)
	CodeNoRoute          Code = "no_route_available" // iicp-dir.md §3.4 dispatch tickets
	CodePrivateAddress   Code = "private_address"    // GET /v1/probe SSRF guard (DIR-PROBE-01/02)
	CodeMethodNotAllowed Code = "method_not_allowed"
	CodePayloadTooLarge  Code = "payload_too_large"
	CodeUnsupportedMedia Code = "unsupported_media_type"
	CodeInternal         Code = "internal_error"
	CodeUnavailable      Code = "service_unavailable"
	// CodeUnsupportedProfile: a required profile is not served
	// (iicp-service-lifecycle-profile.md §2).
	CodeUnsupportedProfile Code = "unsupported_profile"
	// CodeResumeUnavailable: the events a caller asked to resume from are
	// no longer retained (fixture service-lifecycle-v1.json LIFECYCLE-10).
	CodeResumeUnavailable Code = "resume_unavailable"
	// CodeNoAvailableNode: discover returned candidates but every routing
	// attempt failed (PROXY-ERR-02; distinct from IICP-E033). No status in
	// the spec; 503 as for E033.
	CodeNoAvailableNode Code = "no_available_node"
	// CodePolicyRefused is the local prohibited-intent refusal
	// (iicp-semantics.md §1.3). Terminal, not retried; no status in the
	// spec, 403 as a policy refusal.
	CodePolicyRefused Code = "IICP-POLICY-001"
	// CodeInvalidTarget: an audit report (iicp-dir.md §3.9) or telemetry
	// report names its own sender as the target. 422.
	CodeInvalidTarget Code = "invalid_target"
)

// Numbered codes in active use (iicp-core.md §7 and the sub-protocol specs
// that register them: iicp-federated-directory.md §7–§8, iicp-confidentiality.md §6,
// iicp-dir.md).
const (
	CodeE020 Code = "IICP-E020" // coordinator reputation below floor
	CodeE021 Code = "IICP-E021" // worker at max_concurrent_remote
	CodeE022 Code = "IICP-E022" // no CIP-eligible workers
	CodeE023 Code = "IICP-E023" // policy evaluation rate limit
	CodeE024 Code = "IICP-E024" // all dispatched workers timed out
	CodeE025 Code = "IICP-E025" // invalid replica count for majority_vote
	CodeE026 Code = "IICP-E026" // incomplete map-reduce split
	CodeE027 Code = "IICP-E027" // CIP receipt HMAC invalid / ceiling / replay
	CodeE028 Code = "IICP-E028" // invalid CIP field value
	CodeE029 Code = "IICP-E029" // model not registered on this node
	CodeE030 Code = "IICP-E030" // relay target peer not in peer list
	CodeE031 Code = "IICP-E031" // relay forwarding failed
	CodeE032 Code = "IICP-E032" // invalid or missing proxy_token
	CodeE033 Code = "IICP-E033" // no nodes serve this intent
	CodeE034 Code = "IICP-E034" // registration rate limit per source IP
	CodeE035 Code = "IICP-E035" // non-routable endpoint at register
	CodeE036 Code = "IICP-E036" // insufficient credits
	CodeE039 Code = "IICP-E039" // relay session cap (503) / bind rate limit (429 via NewErrorStatus), iicp-dir.md §7.3
	CodeE013 Code = "IICP-E013" // federation: event signature invalid
	CodeE014 Code = "IICP-E014" // federation: seq gap / non-monotonic
	CodeE040 Code = "IICP-E040" // replica did does not resolve
	CodeE041 Code = "IICP-E041" // DID document without Ed25519 method
	CodeE042 Code = "IICP-E042" // replica endpoint health not 200
	CodeE043 Code = "IICP-E043" // replica endpoint non-https or private
	CodeE044 Code = "IICP-E044" // invalid trust_tier_request
	CodeE045 Code = "IICP-E045" // snapshot_required: range pruned
	CodeE046 Code = "IICP-E046" // snapshot generation timed out
	CodeE047 Code = "IICP-E047" // replica_mode_misconfigured
	CodeE048 Code = "IICP-E048" // replica_signing_misconfigured
	CodeE049 Code = "IICP-E049" // cx_public_key change without ownership proof
	CodeE050 Code = "IICP-E050" // directory: routing-field change without ownership (403); CX node: collapsed decrypt/unsupported (422 via NewErrorStatus)
	CodeE053 Code = "IICP-E053" // oversize signalling message
	CodeE060 Code = "IICP-E060" // CX: recipient key id not found
	CodeE061 Code = "IICP-E061" // CX: iicp_conf version not supported
	CodeE062 Code = "IICP-E062" // CX: decryption failed
	CodeE063 Code = "IICP-E063" // CX: key expired
	CodeE064 Code = "IICP-E064" // CX: not supported by this node
)

// codeStatus is the HTTP status of every catalogued code.
var codeStatus = map[Code]int{
	CodeUnauthorized:       401,
	CodeForbidden:          403,
	CodeNotFound:           404,
	CodeConflict:           409,
	CodeUnsupportedProfile: 422,
	CodeResumeUnavailable:  410,
	CodeRateLimited:        429,
	CodeCapacityExceeded:   429,
	CodeTaskTimeout:        504,
	CodeBackendError:       502,
	CodeNoConsensus:        502,
	CodeValidationError:    422,
	CodeUnknownIntent:      422,
	CodeLivenessFailed:     422,
	CodeNoRoute:            404,
	CodePrivateAddress:     422,
	CodeMethodNotAllowed:   405,
	CodePayloadTooLarge:    413,
	CodeUnsupportedMedia:   415,
	CodeInternal:           500,
	CodeUnavailable:        503,
	CodeNoAvailableNode:    503,
	CodePolicyRefused:      403,
	CodeInvalidTarget:      422,

	CodeE020: 403,
	CodeE021: 503,
	CodeE022: 503,
	CodeE023: 429,
	CodeE024: 504,
	CodeE025: 422,
	CodeE026: 422,
	CodeE027: 422,
	CodeE028: 422,
	CodeE029: 404,
	CodeE030: 404,
	CodeE031: 502,
	CodeE032: 401,
	CodeE033: 503,
	CodeE034: 429,
	CodeE035: 422,
	CodeE036: 402,
	CodeE039: 503,
	CodeE013: 422,
	CodeE014: 409,
	CodeE040: 422,
	CodeE041: 422,
	CodeE042: 422,
	CodeE043: 422,
	CodeE044: 422,
	CodeE045: 410,
	CodeE046: 503,
	CodeE047: 503,
	CodeE048: 503,
	CodeE049: 403,
	CodeE050: 403,
	CodeE053: 413,
	CodeE060: 422,
	CodeE061: 422,
	CodeE062: 400,
	CodeE063: 422,
	CodeE064: 422,
}

// HTTPStatus is the HTTP status the spec assigns to c; uncatalogued codes map
// to 500 so a typo can never masquerade as success.
func (c Code) HTTPStatus() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return 500
}

// Known reports whether c is in the catalogue.
func (c Code) Known() bool { _, ok := codeStatus[c]; return ok }

// Codes returns every catalogued code (order unspecified).
func Codes() []Code {
	out := make([]Code, 0, len(codeStatus))
	for c := range codeStatus {
		out = append(out, c)
	}
	return out
}

// Error is an IICP error as a typed value: it travels from the place that
// detects it to the transport, which renders it as the envelope
// {"error":{"code","message",...}} with Code.HTTPStatus().
//
// Message must never contain a task payload, a token, a file path or backend
// detail: it is shown to the remote caller.
type Error struct {
	Code    Code   `json:"code" cbor:"code"`
	Message string `json:"message" cbor:"message"`
	// Field names the offending input field for validation errors.
	Field string `json:"field,omitempty" cbor:"field,omitempty"`
	// QoSClass and RetryAfterMs are required on capacity_exceeded (iicp-semantics.md §2.2).
	QoSClass     string `json:"qos_class,omitempty" cbor:"qos_class,omitempty"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty" cbor:"retry_after_ms,omitempty"`
	// RetryAfter is in seconds (registration rate limit, IICP-E034 / DIR-RL-01).
	RetryAfter int64 `json:"retry_after,omitempty" cbor:"retry_after,omitempty"`
	// HTTP overrides Code.HTTPStatus() where the spec gives one code two
	// statuses by context (see NewErrorStatus); 0 means the catalogue value.
	HTTP int `json:"-" cbor:"-"`

	// close is the native CLOSE reason a decoder attached (CloseReason()).
	close CloseReason
}

// NewError builds an Error for code c.
func NewError(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Errorf builds an Error for code c with a formatted message. Never format
// payloads or tokens into it.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// NewErrorStatus builds an Error whose HTTP status differs from the
// catalogue default, for codes the spec assigns per context: IICP-E050 is 403
// at the directory (routing-field ownership, iicp-dir.md §5: the newer text and
// the catalogue default) but 422 at a CX node (collapsed decrypt/no-support,
// iicp-confidentiality.md §6: NewErrorStatus(CodeE050, 422, ...)); IICP-E039 is 503 for
// the relay session cap but 429 for bind rate limits (iicp-dir.md §7.3).
func NewErrorStatus(c Code, status int, msg string) *Error {
	return &Error{Code: c, Message: msg, HTTP: status}
}

// Status is the HTTP status for e.
func (e *Error) Status() int {
	if e.HTTP != 0 {
		return e.HTTP
	}
	return e.Code.HTTPStatus()
}

// CloseReason is the native CLOSE reason for an error returned by a native
// decoder (iicp-framing.md §9.6): cbor_decode_error for undecodable CBOR,
// protocol_error for §4.16 field-length violations, otherwise
// invalid_payload.
func (e *Error) CloseReason() CloseReason {
	if e.close != "" {
		return e.close
	}
	return CloseInvalidPayload
}

// WithField returns e with Field set.
func (e *Error) WithField(f string) *Error { e.Field = f; return e }

// Envelope is the spec's error body: {"error":{...}}. Code duplicates
// error.code at top level for deployed clients that read it there.
type Envelope struct {
	Error *Error `json:"error" cbor:"error"`
	Code  Code   `json:"code,omitempty" cbor:"code,omitempty"`
}

// Envelope wraps e in the spec's error body.
func (e *Error) Envelope() Envelope { return Envelope{Error: e, Code: e.Code} }
