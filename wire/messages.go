package wire

import "encoding/json"

// This file holds the JSON/string-keyed-CBOR shapes of the IICP messages a
// node and a directory exchange over HTTP (iicp-core.md §2–§5,
// IICP-core-phase1-profile.md §2–§5, iicp-dir.md §3.1–§3.4). The
// integer-keyed native-frame forms are in cbor_native.go.

// QoS classes (iicp-semantics.md §2.1).
const (
	QoSRealtime    = "realtime"
	QoSInteractive = "interactive"
	QoSBatch       = "batch"
	QoSBestEffort  = "best-effort"
)

// Priorities (iicp-core.md §3.1 constraints.priority).
const (
	PriorityLow      = "low"
	PriorityNormal   = "normal"
	PriorityHigh     = "high"
	PriorityCritical = "critical"
)

// Consensus modes (iicp-core.md §3.3).
const (
	ConsensusNone           = "none"
	ConsensusFirstCompleted = "first_completed"
	ConsensusMajorityOf3    = "majority_of_3"
	ConsensusMajorityOf5    = "majority_of_5"
)

// Response statuses (iicp-core.md §3.2).
const (
	StatusSuccess = "success"
	StatusError   = "error"
	StatusTimeout = "timeout"
)

// Well-known intents (registry/intents.json).
const (
	IntentChat       = "urn:iicp:intent:llm:chat:v1"
	IntentCompletion = "urn:iicp:intent:llm:completion:v1"
	IntentEmbedding  = "urn:iicp:intent:llm:embedding:v1"
	IntentSummarise  = "urn:iicp:intent:llm:summarize:v1"
)

// Call is the task CALL (iicp-core.md §3.1): POST /v1/task, or a CALL frame.
// Payload stays raw JSON: the node passes it to the backend and never logs it.
type Call struct {
	TaskID      string          `json:"task_id" cbor:"task_id"`
	Intent      string          `json:"intent" cbor:"intent"`
	Payload     json.RawMessage `json:"payload" cbor:"payload"`
	Constraints Constraints     `json:"constraints" cbor:"constraints"`
	Auth        *Auth           `json:"auth,omitempty" cbor:"auth,omitempty"`
	Trace       *Trace          `json:"trace,omitempty" cbor:"trace,omitempty"`
	Billing     *Billing        `json:"billing,omitempty" cbor:"billing,omitempty"`
	// Model optionally pins the model (IICP-E029 when not served).
	Model string `json:"model,omitempty" cbor:"model,omitempty"`
	// CallID identifies one attempt of TaskID (iicp-framing.md §4.3 key 15).
	CallID string `json:"call_id,omitempty" cbor:"call_id,omitempty"`
	// SessionID is the native CALL session (iicp-framing.md §4.3 key 2); the
	// native codec fills it from TaskID when empty.
	SessionID string `json:"session_id,omitempty" cbor:"session_id,omitempty"`
	// IdempotencyKey is the client's replay-safety token (§4.3 key 16).
	IdempotencyKey string `json:"idempotency_key,omitempty" cbor:"idempotency_key,omitempty"`
	// Conf is the IICP-CX envelope (iicp-confidentiality.md §4.1), kept raw so
	// the engine can answer IICP-E050/E064; Payload is then absent.
	Conf json.RawMessage `json:"iicp_conf,omitempty" cbor:"-"`
}

// Constraints is the CALL's enforced execution envelope.
type Constraints struct {
	// TimeoutMs is the provider attempt budget, 100–300000 (schemas/task.json).
	TimeoutMs int64  `json:"timeout_ms" cbor:"timeout_ms"`
	QoS       string `json:"qos,omitempty" cbor:"qos,omitempty"`
	Priority  string `json:"priority,omitempty" cbor:"priority,omitempty"`
	Consensus string `json:"consensus,omitempty" cbor:"consensus,omitempty"`
	Region    string `json:"region,omitempty" cbor:"region,omitempty"`
	// MaxTokens caps output tokens (iicp-cbor-wire.md §4.1.1; native key 17).
	MaxTokens int64 `json:"max_tokens,omitempty" cbor:"max_tokens,omitempty"`
	// RequiredProfiles and OptionalProfiles negotiate IICP profiles
	// (iicp-service-lifecycle-profile.md §2), e.g. ProfileServiceLifecycle.
	RequiredProfiles []string `json:"required_profiles,omitempty" cbor:"required_profiles,omitempty"`
	OptionalProfiles []string `json:"optional_profiles,omitempty" cbor:"optional_profiles,omitempty"`
}

// Auth carries the operator capability credential (errata v1.5.1).
// LOG-FORBIDDEN: never log, label or echo NodeToken.
type Auth struct {
	NodeToken string `json:"node_token" cbor:"node_token"`
}

// Trace carries observability identifiers (iicp-core.md §3.1, iicp-semantics.md §10.1).
type Trace struct {
	TraceID    string `json:"trace_id,omitempty" cbor:"trace_id,omitempty"`
	OriginNode string `json:"origin_node,omitempty" cbor:"origin_node,omitempty"`
}

// Billing is accepted and ignored in Phase 1 (schemas/task.json).
type Billing struct {
	MaxCredits *float64 `json:"max_credits,omitempty" cbor:"max_credits,omitempty"`
	Priority   string   `json:"priority,omitempty" cbor:"priority,omitempty"`
}

// Response is the task RESPONSE (iicp-core.md §3.2). On failure Status is
// "error" or "timeout", Result is null and Error is set; the transport takes
// its HTTP status from Error.Status().
type Response struct {
	TaskID        string          `json:"task_id" cbor:"task_id"`
	Status        string          `json:"status" cbor:"status"`
	Result        json.RawMessage `json:"result" cbor:"result"`
	Metrics       Metrics         `json:"metrics" cbor:"metrics"`
	ModelUsed     string          `json:"model_used,omitempty" cbor:"model_used,omitempty"`
	GeneratedByAI *bool           `json:"generated_by_ai,omitempty" cbor:"generated_by_ai,omitempty"`
	NodeID        string          `json:"node_id,omitempty" cbor:"node_id,omitempty"`
	Error         *Error          `json:"error" cbor:"error"`
	// Code duplicates Error.Code at top level for deployed clients (issue 8).
	Code Code `json:"code,omitempty" cbor:"code,omitempty"`
	// SessionID and CallID echo the native CALL (iicp-framing.md §4.4 keys 2, 3).
	SessionID string `json:"session_id,omitempty" cbor:"session_id,omitempty"`
	CallID    string `json:"call_id,omitempty" cbor:"call_id,omitempty"`
	// Lifecycle is the service-lifecycle envelope, present only when the
	// CALL negotiated ProfileServiceLifecycle (framing §4.4.2).
	Lifecycle *Lifecycle `json:"lifecycle,omitempty" cbor:"lifecycle,omitempty"`
}

// Metrics are the RESPONSE's execution metrics.
type Metrics struct {
	LatencyMs  int64 `json:"latency_ms" cbor:"latency_ms"`
	TokensUsed int64 `json:"tokens_used" cbor:"tokens_used"`
}

// Caller is what a transport observed about who sent a CALL. It is not part
// of the CALL body; the engine authorizes against it together with Call.Auth.
// LOG-FORBIDDEN: ConsumerToken.
type Caller struct {
	// ConsumerToken is the X-IICP-Consumer-Token header (errata v1.5.2).
	ConsumerToken string
	// PeerID is the authenticated libp2p peer on mesh transports ("" on HTTP).
	PeerID string
	// PeerNodeID is the node_id derived from PeerID's key: the caller's
	// proven node_id on mesh transports ("" on HTTP, where no caller
	// identity is authenticated).
	PeerNodeID string
	// RemoteIP is the transport source address, for rate limiting.
	RemoteIP string
	// Origin is the HTTP Origin header, for per-origin rate limiting.
	Origin string
	// Transport names the path for metrics: "http", "quic", "tcp".
	Transport string
	// Member reports that the transport verified a directory-issued
	// membership credential for the authenticated peer (mesh): the caller
	// is a registered member of the mesh (docs/spec-decisions.md).
	Member bool
	// SameOperator reports that the transport verified the caller's
	// operator delegation for the authenticated peer and that it names the
	// serving node's own operator key (mesh; docs/spec-decisions.md "Home
	// mesh").
	SameOperator bool
	// MemberRefusal is why a membership credential or operator delegation
	// the caller presented was refused (expired, forged, revoked, another
	// operator); the engine answers with it when no other credential
	// authorises the call.
	MemberRefusal *Error
}

// Capability is one advertised capability (iicp-core.md §2.1, iicp-dir.md §3.1).
type Capability struct {
	Intent          string   `json:"intent" cbor:"intent"`
	Models          []string `json:"models,omitempty" cbor:"models,omitempty"`
	MaxTokens       int64    `json:"max_tokens,omitempty" cbor:"max_tokens,omitempty"`
	Quantization    string   `json:"quantization,omitempty" cbor:"quantization,omitempty"`
	InferenceEngine string   `json:"inference_engine,omitempty" cbor:"inference_engine,omitempty"`
	InputModalities []string `json:"input_modalities,omitempty" cbor:"input_modalities,omitempty"`
	// SupportsStreaming and SupportedProfiles advertise the
	// service-lifecycle profile (node-capability-format.md §2–§3).
	SupportsStreaming bool     `json:"supports_streaming,omitempty" cbor:"supports_streaming,omitempty"`
	SupportedProfiles []string `json:"supported_profiles,omitempty" cbor:"supported_profiles,omitempty"`
}

// Limits are the node's declared resource limits.
type Limits struct {
	MaxConcurrent int   `json:"max_concurrent" cbor:"max_concurrent"`
	TokensPerMin  int64 `json:"tokens_per_min,omitempty" cbor:"tokens_per_min,omitempty"`
}

// AvailabilityWindow is a UTC sharing window (iicp-semantics.md §4).
type AvailabilityWindow struct {
	Start string  `json:"start" cbor:"start"`
	End   string  `json:"end" cbor:"end"`
	Share float64 `json:"share" cbor:"share"`
}

// CXPublicKey is a node's IICP-CX X25519 key (iicp-confidentiality.md §3.1,
// schemas/nodelist.json $defs.CxPublicKey). The spec fields are Algorithm,
// Encoding, Key, KeyID, NotAfter, HybridPQ and Features; Alg, PublicKey and
// ExpiresAt are earlier meshnode names kept for source compatibility and
// omitted from the wire when empty.
type CXPublicKey struct {
	KeyID     string `json:"key_id" cbor:"key_id"`
	Alg       string `json:"alg,omitempty" cbor:"alg,omitempty"`
	PublicKey string `json:"public_key,omitempty" cbor:"public_key,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty" cbor:"expires_at,omitempty"`

	// Algorithm is "X25519".
	Algorithm string `json:"algorithm,omitempty" cbor:"algorithm,omitempty"`
	// Encoding of Key: "base64url" (no padding).
	Encoding string `json:"encoding,omitempty" cbor:"encoding,omitempty"`
	// Key is the 32-byte X25519 public key, base64url without padding.
	Key string `json:"key,omitempty" cbor:"key,omitempty"`
	// NotAfter is the RFC 3339 UTC expiry (≤ 90 days, CX-NODE-01).
	NotAfter string `json:"not_after,omitempty" cbor:"not_after,omitempty"`
	// HybridPQ is reserved (Phase 4+); Tier 1 sends JSON null. Not carried
	// in CBOR (a raw JSON value has no CBOR form; Tier 1 has nothing to carry).
	HybridPQ json.RawMessage `json:"hybrid_pq,omitempty" cbor:"-"`
	// Features lists additive CX features, e.g. "response_encryption_v1"
	// (§5a.3); unknown entries are ignored.
	Features []string `json:"features,omitempty" cbor:"features,omitempty"`
}

// RegisterRequest is INIT: POST /v1/register (iicp-core.md §2.1, iicp-dir.md §3.1).
// Unknown fields are ignored for forward compatibility.
type RegisterRequest struct {
	MessageType       string               `json:"message_type,omitempty"`
	NodeID            string               `json:"node_id,omitempty"`
	Endpoint          string               `json:"endpoint"`
	Region            string               `json:"region"`
	Capabilities      []Capability         `json:"capabilities"`
	Limits            Limits               `json:"limits"`
	PublicKey         string               `json:"public_key,omitempty"`
	Availability      []AvailabilityWindow `json:"availability,omitempty"`
	TransportEndpoint string               `json:"transport_endpoint,omitempty"`
	CXPublicKey       *CXPublicKey         `json:"cx_public_key,omitempty"`
	// CurrentNodeToken proves ownership on re-registration and rotates the token.
	// LOG-FORBIDDEN.
	CurrentNodeToken string `json:"current_node_token,omitempty"`
	// Extensions carries namespaced extras; meshnode publishes its libp2p
	// peer ID and multiaddrs under Extensions["meshnode.p2p"].
	Extensions map[string]json.RawMessage `json:"extensions,omitempty"`
	// OperatorDelegation binds the node to its operator's key (iicp-dir.md
	// §3.1, ADR-045 Phase A); see operator.go.
	OperatorDelegation *OperatorDelegation `json:"operator_delegation,omitempty"`
	// NodeKeyBinding carries the node_id over to a rotated or recovered node
	// key (a meshnode extension; see keybinding.go).
	NodeKeyBinding *NodeKeyBinding `json:"node_key_binding,omitempty"`

	SDKLanguage             string `json:"sdk_language,omitempty"`
	SDKVersion              string `json:"sdk_version,omitempty"`
	ImplementationName      string `json:"implementation_name,omitempty"`
	ImplementationVersion   string `json:"implementation_version,omitempty"`
	SDKCompatibilityVersion string `json:"sdk_compatibility_version,omitempty"`
}

// RegisterAck is ACK: the 201 body of POST /v1/register (iicp-core.md §2.2).
type RegisterAck struct {
	NodeID    string `json:"node_id"`
	NodeToken string `json:"node_token"`
	// ProxyToken authenticates POST /v1/telemetry (iicp-telemetry.md §3).
	ProxyToken       string  `json:"proxy_token,omitempty"`
	ExpiresAt        *string `json:"expires_at"`
	Directory        string  `json:"directory"`
	ObservedSourceIP string  `json:"observed_source_ip"`
	NextHeartbeatMs  int64   `json:"next_heartbeat_ms,omitempty"`
}

// Heartbeat is PING: POST /v1/heartbeat (iicp-core.md §4.1).
type Heartbeat struct {
	NodeID     string   `json:"node_id"`
	Load       *float64 `json:"load,omitempty"`
	ActiveJobs *int     `json:"active_jobs,omitempty"`
	Available  *bool    `json:"available,omitempty"`
	SLAP95Ms   *int64   `json:"sla_p95_ms,omitempty"`
	// Metrics are the task outcomes since the last acknowledged batch
	// (iicp-dir.md §3.2); MetricsBatchID names the batch so a retry is
	// applied at most once (REP-09).
	Metrics        *HeartbeatMetrics `json:"metrics,omitempty"`
	MetricsBatchID string            `json:"metrics_batch_id,omitempty"`
}

// HeartbeatMetrics are a HEARTBEAT's self-reported outcome counters for the
// period (iicp-dir.md §3.2, iicp-semantics.md §11.2 outcome-v2).
type HeartbeatMetrics struct {
	TasksSuccess int64 `json:"tasks_success"`
	TasksFailed  int64 `json:"tasks_failed"`
	// AvgLatencyMs is the mean latency of the period's successful tasks;
	// advisory evidence only, never a reputation input (§11.1).
	AvgLatencyMs *float64 `json:"avg_latency_ms,omitempty"`
}

// MaxMetricsBatchID is the longest metrics_batch_id (iicp-dir.md §3.2).
const MaxMetricsBatchID = 64

// Pong is PONG: the heartbeat response (iicp-core.md §4.2, iicp-dir.md
// §3.2). ReputationScore is nil when the directory predates the field;
// MetricsBatchAccepted names the batch the directory has applied.
type Pong struct {
	OK                   bool     `json:"ok"`
	NextHeartbeatMs      int64    `json:"next_heartbeat_ms"`
	ReputationScore      *float64 `json:"reputation_score,omitempty"`
	ReputationModel      string   `json:"reputation_model,omitempty"`
	ReputationEpoch      string   `json:"reputation_epoch,omitempty"`
	MetricsBatchAccepted *string  `json:"metrics_batch_accepted,omitempty"`
}

// NodeList is the discover response (schemas/nodelist.json, iicp-dir.md §3.4).
type NodeList struct {
	Nodes                     []NodeSummary `json:"nodes" cbor:"nodes"`
	Count                     int           `json:"count" cbor:"count"`
	QueryMs                   int64         `json:"query_ms" cbor:"query_ms"`
	RelayAvailable            *bool         `json:"relay_available,omitempty" cbor:"relay_available,omitempty"`
	View                      string        `json:"view,omitempty" cbor:"view,omitempty"`
	DataClass                 string        `json:"data_class,omitempty" cbor:"data_class,omitempty"`
	RouteFieldsPresent        *bool         `json:"route_fields_present,omitempty" cbor:"route_fields_present,omitempty"`
	DispatchTicketEndpoint    string        `json:"dispatch_ticket_endpoint,omitempty" cbor:"dispatch_ticket_endpoint,omitempty"`
	TicketedDispatchAvailable *bool         `json:"ticketed_dispatch_available,omitempty" cbor:"ticketed_dispatch_available,omitempty"`
}

// NodeSummary is one discover result (schemas/nodelist.json NodeSummary).
// Route-bearing fields (NodeID, Endpoint, TransportEndpoint) are empty in view=public.
type NodeSummary struct {
	NodeID            string       `json:"node_id,omitempty" cbor:"node_id,omitempty"`
	NodeIDPrefix      string       `json:"node_id_prefix,omitempty" cbor:"node_id_prefix,omitempty"`
	Endpoint          string       `json:"endpoint,omitempty" cbor:"endpoint,omitempty"`
	TransportEndpoint string       `json:"transport_endpoint,omitempty" cbor:"transport_endpoint,omitempty"`
	Score             float64      `json:"score" cbor:"score"`
	LatencyEstimateMs *int64       `json:"latency_estimate_ms,omitempty" cbor:"latency_estimate_ms,omitempty"`
	Available         bool         `json:"available" cbor:"available"`
	Region            string       `json:"region,omitempty" cbor:"region,omitempty"`
	Capabilities      []Capability `json:"capabilities,omitempty" cbor:"capabilities,omitempty"`
	Load              *float64     `json:"load,omitempty" cbor:"load,omitempty"`
	CXPublicKey       *CXPublicKey `json:"cx_public_key" cbor:"cx_public_key"`
	KeyReady          bool         `json:"key_ready" cbor:"key_ready"`
	// Extensions mirrors REGISTER extensions (meshnode.p2p: peer ID and multiaddrs).
	Extensions map[string]json.RawMessage `json:"extensions,omitempty" cbor:"extensions,omitempty"`
}

// Health is GET /iicp/health on a node (NODE-HEALTH-01..03).
type Health struct {
	Status        string   `json:"status"` // ok | degraded
	NodeID        string   `json:"node_id,omitempty"`
	Version       string   `json:"version,omitempty"`
	Load          float64  `json:"load"`
	ActiveJobs    int      `json:"active_jobs"`
	MaxConcurrent int      `json:"max_concurrent"`
	Available     bool     `json:"available"`
	Models        []string `json:"models"`
	Intents       []string `json:"intents"`
	Backend       string   `json:"backend,omitempty"`
	UptimeS       int64    `json:"uptime_s"`
}

// EchoModel is the model name meshnode's built-in echo backend serves: no
// model at all, it reflects the input. Routers rank a node offering only
// it for an intent below every node with a real model.
const EchoModel = "meshnode-echo"

// EchoOnly reports whether models (one capability's list for an intent)
// names the echo backend and nothing else.
func EchoOnly(models []string) bool {
	if len(models) == 0 {
		return false
	}
	for _, m := range models {
		if m != EchoModel {
			return false
		}
	}
	return true
}
