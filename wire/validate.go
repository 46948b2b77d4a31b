package wire

import (
	"net/url"
	"strconv"
	"strings"
)

// Validation limits. Spec-given values cite their source; the others are
// meshnode bounds that keep hostile input cheap and are far above real use.
const (
	MinTimeoutMs = 100    // schemas/task.json constraints.timeout_ms minimum
	MaxTimeoutMs = 300000 // schemas/task.json constraints.timeout_ms maximum
	MaxRegionLen = 64     // iicp-core.md §2.1 region "max 64 chars"

	MinMaxConcurrent = 1   // iicp-core.md §2.1 limits.max_concurrent
	MaxMaxConcurrent = 256 // iicp-core.md §2.1 limits.max_concurrent

	// MaxCapabilities bounds capabilities per REGISTER; a node serving more
	// than 64 intents is not a realistic Phase 1 node, and the directory
	// stores them per row.
	MaxCapabilities = 64
	// MaxModels bounds capabilities[].models.
	MaxModels = 256
	// MaxNameLen bounds model names, tokens and other free identifiers.
	MaxNameLen = 256
	// MaxTokenLen bounds auth.node_token (32-byte hex tokens are 64 chars;
	// JWT-style Phase 2 tokens stay well below 4 KiB).
	MaxTokenLen = 4096
	// MaxEndpointLen bounds endpoint URLs.
	MaxEndpointLen = 2048
)

// ValidUUIDv4 reports whether s is a canonical 36-char UUID with version 4 and
// the RFC 9562 variant (10xx). Hex digits are accepted in either case
// (RFC 9562 §4: input is case-insensitive).
func ValidUUIDv4(s string) bool {
	return validUUID(s) && s[14] == '4' && strings.IndexByte("89abAB", s[19]) >= 0
}

// ValidUUID reports whether s is a canonical 36-char UUID of any version.
func ValidUUID(s string) bool { return validUUID(s) }

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func invalid(field, msg string) *Error {
	return NewError(CodeValidationError, field+" "+msg).WithField(field)
}

// ValidateCall checks a decoded CALL against iicp-core.md §3.1 and
// schemas/task.json. It never panics and returns the first problem found.
//
// auth is deliberately not required here: a missing credential is an
// authorization failure (401, SEC-RN-02) that the engine decides together with
// the X-IICP-Consumer-Token header (errata v1.5.2), not a 422.
func ValidateCall(c *Call) *Error {
	if c == nil {
		return invalid("body", "is missing")
	}
	if !ValidUUIDv4(c.TaskID) {
		return invalid("task_id", "must be a UUID version 4 (PROTO-MSG-01)")
	}
	if _, err := ParseIntent(c.Intent); err != nil {
		return err
	}
	if c.Conf == nil {
		if len(c.Payload) == 0 || !isJSONObject(c.Payload) {
			return invalid("payload", "must be a JSON object")
		}
	} else if len(c.Payload) != 0 && !isJSONNull(c.Payload) {
		// iicp-confidentiality.md §4.1: payload MUST be absent with iicp_conf.
		return invalid("payload", "must be absent when iicp_conf is present")
	}
	if err := validateConstraints(&c.Constraints); err != nil {
		return err
	}
	if err := validateProfiles(&c.Constraints); err != nil {
		return err
	}
	if c.Auth != nil && len(c.Auth.NodeToken) > MaxTokenLen {
		return invalid("auth.node_token", "is too long")
	}
	if err := validateTrace(c.Trace); err != nil {
		return err
	}
	if c.Billing != nil {
		if c.Billing.MaxCredits != nil && *c.Billing.MaxCredits < 0 {
			return invalid("billing.max_credits", "must be >= 0")
		}
		if p := c.Billing.Priority; p != "" && p != "standard" && p != "premium" {
			return invalid("billing.priority", "must be standard or premium")
		}
	}
	if len(c.Model) > MaxNameLen {
		return invalid("model", "is too long")
	}
	for _, f := range [...]struct{ name, v string }{
		{"call_id", c.CallID}, {"session_id", c.SessionID}, {"idempotency_key", c.IdempotencyKey},
	} {
		if len(f.v) > MaxNameLen || !printable(f.v) {
			return invalid(f.name, "must be at most 256 printable characters")
		}
	}
	return nil
}

func validateConstraints(k *Constraints) *Error {
	if k.TimeoutMs < MinTimeoutMs || k.TimeoutMs > MaxTimeoutMs {
		return invalid("constraints.timeout_ms", "must be an integer in [100, 300000]")
	}
	switch k.QoS {
	case "", QoSRealtime, QoSInteractive, QoSBatch, QoSBestEffort:
	default:
		return invalid("constraints.qos", "must be realtime, interactive, batch or best-effort")
	}
	switch k.Priority {
	case "", PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical:
	default:
		return invalid("constraints.priority", "must be low, normal, high or critical")
	}
	switch k.Consensus {
	case "", ConsensusNone, ConsensusFirstCompleted, ConsensusMajorityOf3, ConsensusMajorityOf5:
	default:
		return invalid("constraints.consensus", "must be none, first_completed, majority_of_3 or majority_of_5")
	}
	if len(k.Region) > MaxRegionLen || !printable(k.Region) {
		return invalid("constraints.region", "must be at most 64 printable characters")
	}
	if k.MaxTokens < 0 {
		return invalid("constraints.max_tokens", "must be >= 1")
	}
	return nil
}

func validateTrace(t *Trace) *Error {
	if t == nil {
		return nil
	}
	if t.TraceID != "" {
		if _, ok := TraceIDBytes(t.TraceID); !ok {
			return invalid("trace.trace_id", "must be 32 hex digits or a UUID (16 bytes)")
		}
	}
	if t.OriginNode != "" && !ValidUUID(t.OriginNode) {
		return invalid("trace.origin_node", "must be a UUID")
	}
	return nil
}

// TraceIDBytes converts a trace ID in either accepted text form (32 hex
// digits, W3C; or a 36-char UUID, iicp-cbor-wire.md §4.1) to its 16 bytes.
func TraceIDBytes(s string) ([16]byte, bool) {
	var out [16]byte
	if len(s) == 36 {
		if !validUUID(s) {
			return out, false
		}
		s = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(s) != 32 {
		return out, false
	}
	for i := 0; i < 16; i++ {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi < 0 || lo < 0 {
			return out, false
		}
		out[i] = byte(hi<<4 | lo)
	}
	return out, true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// printable reports whether s has no control characters (bytes < 0x20, 0x7f).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// ValidateRegister checks a REGISTER (INIT) body against iicp-core.md §2.1 and
// iicp-dir.md §3.1. Endpoint checks are syntax-only; routability (IICP-E035)
// and liveness (DIR-REG-04) are the directory's job.
func ValidateRegister(r *RegisterRequest) *Error {
	if r == nil {
		return invalid("body", "is missing")
	}
	if r.NodeID != "" && !ValidUUIDv4(r.NodeID) {
		return invalid("node_id", "must be a UUID version 4")
	}
	if err := ValidateEndpoint("endpoint", r.Endpoint, "http", "https"); err != nil {
		return err
	}
	if r.TransportEndpoint != "" {
		if err := ValidateEndpoint("transport_endpoint", r.TransportEndpoint, "iicp", "iicpsec"); err != nil {
			return err
		}
	}
	if r.Region == "" || len(r.Region) > MaxRegionLen || !printable(r.Region) || strings.ContainsRune(r.Region, ' ') {
		return invalid("region", "must be 1-64 characters without spaces")
	}
	if err := validateCapabilities(r.Capabilities); err != nil {
		return err
	}
	if r.Limits.MaxConcurrent < MinMaxConcurrent || r.Limits.MaxConcurrent > MaxMaxConcurrent {
		return invalid("limits.max_concurrent", "must be in [1, 256]")
	}
	// tokens_per_min is optional in iicp-dir.md §3.1; when sent it must be > 0
	// (iicp-core.md §2.1). 0 is indistinguishable from absent and accepted.
	if r.Limits.TokensPerMin < 0 {
		return invalid("limits.tokens_per_min", "must be > 0")
	}
	if len(r.CurrentNodeToken) > MaxTokenLen {
		return invalid("current_node_token", "is too long")
	}
	return nil
}

// validateCapabilities applies iicp-core.md §2.1 with its conditional-field
// rule: models and max_tokens are required for the llm domain (model identity
// and an output-token bound are part of those intents' contract, and the
// connected-profile projection still requires them), optional elsewhere
// (MCP tools, retrieval, batch; iicp-mcp-binding.md §8 forbids rejecting an
// MCP capability for lacking them), and validated whenever present.
func validateCapabilities(caps []Capability) *Error {
	if len(caps) == 0 {
		return invalid("capabilities", "must contain at least one capability")
	}
	if len(caps) > MaxCapabilities {
		return invalid("capabilities", "must contain at most 64 capabilities")
	}
	for i := range caps {
		c := &caps[i]
		field := "capabilities[" + strconv.Itoa(i) + "]"
		in, err := ParseIntent(c.Intent)
		if err != nil {
			err.Field = field + ".intent"
			return err
		}
		if len(c.Models) > MaxModels {
			return invalid(field+".models", "must contain at most 256 models")
		}
		for _, m := range c.Models {
			if m == "" || len(m) > MaxNameLen || !printable(m) {
				return invalid(field+".models", "entries must be 1-256 printable characters")
			}
		}
		if c.MaxTokens < 0 {
			return invalid(field+".max_tokens", "must be > 0")
		}
		if in.Domain == "llm" {
			if len(c.Models) == 0 {
				return invalid(field+".models", "must list at least one model for llm intents")
			}
			if c.MaxTokens <= 0 {
				return invalid(field+".max_tokens", "must be > 0 for llm intents")
			}
		}
	}
	return nil
}

// ValidateEndpoint checks that raw is an absolute URL with one of schemes,
// a host, and no user info or fragment. It does not resolve or classify the
// host. field names the input in the returned error.
func ValidateEndpoint(field, raw string, schemes ...string) *Error {
	if raw == "" {
		return invalid(field, "is required")
	}
	if len(raw) > MaxEndpointLen || !printable(raw) || strings.ContainsRune(raw, ' ') {
		return invalid(field, "must be a URL of at most 2048 characters")
	}
	u, perr := url.Parse(raw)
	if perr != nil || !u.IsAbs() || u.Opaque != "" {
		return invalid(field, "must be an absolute URL")
	}
	ok := false
	for _, s := range schemes {
		if u.Scheme == s {
			ok = true
		}
	}
	if !ok {
		return invalid(field, "must use scheme "+strings.Join(schemes, " or "))
	}
	if u.Hostname() == "" {
		return invalid(field, "must name a host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return invalid(field, "has an invalid port")
		}
	}
	if u.User != nil || u.Fragment != "" || u.RawQuery != "" {
		return invalid(field, "must not carry user info, a query or a fragment")
	}
	return nil
}

// ValidateHeartbeat checks a PING body (iicp-core.md §4.1).
func ValidateHeartbeat(h *Heartbeat) *Error {
	if h == nil {
		return invalid("body", "is missing")
	}
	if !ValidUUIDv4(h.NodeID) {
		return invalid("node_id", "must be a UUID version 4")
	}
	if h.Load != nil && !(*h.Load >= 0 && *h.Load <= 1) {
		return invalid("load", "must be in [0, 1]")
	}
	if h.ActiveJobs != nil && *h.ActiveJobs < 0 {
		return invalid("active_jobs", "must be >= 0")
	}
	if h.SLAP95Ms != nil && *h.SLAP95Ms < 0 {
		return invalid("sla_p95_ms", "must be >= 0")
	}
	if m := h.Metrics; m != nil && (m.TasksSuccess < 0 || m.TasksFailed < 0 || (m.AvgLatencyMs != nil && !(*m.AvgLatencyMs >= 0))) {
		return invalid("metrics", "counters and avg_latency_ms must be >= 0")
	}
	if h.MetricsBatchID != "" && !ValidMetricsBatchID(h.MetricsBatchID) {
		return invalid("metrics_batch_id", "must be 1-64 printable ASCII characters")
	}
	return nil
}

// ValidMetricsBatchID reports whether id is 1–64 printable ASCII
// characters (iicp-dir.md §3.2).
func ValidMetricsBatchID(id string) bool {
	if id == "" || len(id) > MaxMetricsBatchID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}
