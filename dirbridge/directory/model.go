package directory

import (
	"encoding/json"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// NodeRecord is the registered (static) part of a node: what REGISTER set.
// It is replaced wholesale by a re-registration and never mutated in place,
// so readers may hold a pointer without locking.
type NodeRecord struct {
	NodeID            string                     `json:"node_id"`
	Endpoint          string                     `json:"endpoint"`
	TransportEndpoint string                     `json:"transport_endpoint,omitempty"`
	Region            string                     `json:"region"`
	Capabilities      []wire.Capability          `json:"capabilities"`
	Limits            wire.Limits                `json:"limits"`
	Availability      []wire.AvailabilityWindow  `json:"availability,omitempty"`
	PublicKey         string                     `json:"public_key,omitempty"`
	CXPublicKey       json.RawMessage            `json:"cx_public_key,omitempty"`
	Extensions        map[string]json.RawMessage `json:"extensions,omitempty"`
	// CIPLevel is one of CIP-None, CIP-Consumer, CIP-Provider, CIP-Full.
	CIPLevel              string `json:"cip_conformance_level"`
	AllowRemoteInference  bool   `json:"allow_remote_inference,omitempty"`
	SDKLanguage           string `json:"sdk_language,omitempty"`
	SDKVersion            string `json:"sdk_version,omitempty"`
	ImplementationName    string `json:"implementation_name,omitempty"`
	ImplementationVersion string `json:"implementation_version,omitempty"`
	SDKCompatVersion      string `json:"sdk_compatibility_version,omitempty"`
	Backend               string `json:"backend,omitempty"`
	TransportMethod       string `json:"transport_method,omitempty"`
	// OperatorPubKey is the operator key a verified operator_delegation
	// proved (standard base64). It makes the node "secured" (IICP-E050):
	// every refresh then needs current_node_token. Directory-private: no
	// view serves it and the federation payload does not carry it.
	OperatorPubKey string `json:"operator_pubkey,omitempty"`
	// OperatorNotAfter is the not_after (unix seconds) of the latest
	// verified delegation: the node shows as the operator's until then
	// (short TTL is the revocation baseline, §3.1); it stays secured.
	OperatorNotAfter int64 `json:"operator_not_after,omitempty"`
	// RegisteredAt is the first registration; refreshes keep it.
	RegisteredAt time.Time `json:"registered_at"`
	// UpdatedAt is the latest (re-)registration.
	UpdatedAt time.Time `json:"updated_at"`
}

// nodeState is the heartbeat-driven (dynamic) part of a node. A new value
// replaces the old one atomically; values are never mutated once published.
type nodeState struct {
	LastSeen       time.Time `json:"last_seen"`
	Load           float64   `json:"load"`
	LoadReported   bool      `json:"load_reported,omitempty"`
	ActiveJobs     int       `json:"active_jobs"`
	Available      bool      `json:"available"`
	SLAP95Ms       *int64    `json:"sla_p95_ms,omitempty"`
	ObservedIP     string    `json:"observed_source_ip"`
	CompletedTasks int64     `json:"completed_tasks_count"`
	FailedTasks    int64     `json:"failed_tasks_count"`
	LastBatchID    string    `json:"last_metrics_batch_id,omitempty"`
	Reputation     float64   `json:"reputation_score"`
	// RepHourlyGain and RepWindowStart are the RT-01b hourly budget
	// (iicp-semantics.md §11.6), persisted with the state.
	RepHourlyGain  float64    `json:"rep_hourly_gain,omitempty"`
	RepWindowStart *time.Time `json:"rep_hourly_window_start,omitempty"`
	// DormantSince is set by the maintenance loop when a node goes stale
	// and cleared by the next heartbeat (iicp-dir.md §3.2).
	DormantSince *time.Time `json:"dormant_since,omitempty"`
	// Reach is the directory's own active probe of the endpoint
	// (reprobe.go); nil until the first scheduled probe. Immutable: a
	// probe replaces it.
	Reach *reachState `json:"reach,omitempty"`
}

// defaultReputation is the score of a node with no history (iicp-dir.md §3.2).
const defaultReputation = 0.5

// Credential is the stored form of a node token: a bcrypt hash plus the
// keyed lookup index (HMAC-SHA256 under the directory secret). It is secret
// material: never log it, never serve it.
type Credential struct {
	Hash  []byte `json:"-"`
	Index string `json:"-"`
}

// ChangeKind names a federated change; values are the event-log names
// (iicp-dir.md §3.7).
type ChangeKind string

// The change kinds the store emits.
const (
	ChangeRegister   ChangeKind = "REGISTER"
	ChangeDeregister ChangeKind = "DEREGISTER"
)

// Deregistration reasons (iicp-dir.md §3.7 DEREGISTER payload).
const (
	ReasonExplicit = "explicit"
	ReasonExpired  = "expired"
)

// ChangeEvent is one registration or deregistration. Every such change goes
// through store.apply, which persists it and then hands it to the OnChange
// hook (the federation event log attaches there; a replica applies remote
// events through Server.ApplyChange).
type ChangeEvent struct {
	Kind   ChangeKind
	NodeID string
	// Record is the full registration on REGISTER, nil on DEREGISTER.
	Record *NodeRecord
	// Credential is set when a token was issued or rotated. Secret: a
	// federation log must strip it.
	Credential *Credential
	// ObservedIP is the source address seen on the request (DIR-ADDR-01).
	ObservedIP string
	Reason     string
	At         time.Time
}
