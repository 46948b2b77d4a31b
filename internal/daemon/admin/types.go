package admin

import (
	"encoding/json"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// Runtime is runtime.json: where the running node can be reached.
type Runtime struct {
	PID      int    `json:"pid"`
	Version  string `json:"version"`
	NodeID   string `json:"node_id"`
	PeerID   string `json:"peer_id,omitempty"`
	AdminURL string `json:"admin_url"`
	// HTTPURL is the HTTP bridge's bound base URL.
	HTTPURL string `json:"http_url"`
	// MCPURL is the MCP endpoint (route/mcp), "" when disabled.
	MCPURL string `json:"mcp_url,omitempty"`
	// Endpoint is the URL registered with directories.
	Endpoint string `json:"endpoint"`
	// OpenAIURL is the OpenAI-compatible API's base URL (ends in /v1; ""
	// when openai.enabled is false).
	OpenAIURL string `json:"openai_url,omitempty"`
	// Directories are the directories the node registers with.
	Directories []string `json:"directories"`
	// EmbeddedDirectory is the in-process directory's URL (dev mode).
	EmbeddedDirectory string    `json:"embedded_directory,omitempty"`
	P2PAddrs          []string  `json:"p2p_addrs,omitempty"`
	StartedAt         time.Time `json:"started_at"`
}

// Status is GET /admin/v1/status.
type Status struct {
	NodeID    string    `json:"node_id"`
	PeerID    string    `json:"peer_id,omitempty"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	UptimeS   int64     `json:"uptime_s"`
	HTTPURL   string    `json:"http_url"`
	Endpoint  string    `json:"endpoint"`
	// DirectoryMode is "embedded", "external" or "disabled".
	DirectoryMode string `json:"directory_mode"`
	// Directories are the registrations: where this node writes
	// (register, heartbeat, deregister), one per seed.
	Directories []dirclient.Status `json:"directories"`
	// DirectoryReads says, per seed, which directories serve discover
	// reads: the nearest healthy replica, else the seed.
	DirectoryReads []DirectoryReads `json:"directory_reads,omitempty"`
	// ObservedSourceIP is the most recent IP a directory observed
	// (iicp-core.md §11.2: status MUST show it).
	ObservedSourceIP string      `json:"observed_source_ip,omitempty"`
	Health           wire.Health `json:"health"`
	// Served counts finished tasks by outcome.
	Served map[string]uint64 `json:"served"`
	Mesh   MeshStatus        `json:"mesh"`
	// CX is the node's IICP-CX side: the key it advertises and how many
	// sealed tasks it opened (iicp-confidentiality.md).
	CX CXStatus `json:"cx"`
	// Operator is the operator delegation this node sends in REGISTER
	// (nil: none in its home).
	Operator *OperatorStatus `json:"operator,omitempty"`
}

// OperatorStatus describes the node's operator delegation (iicp-dir.md
// §3.1). Problem is set when it is not sent (expired, another node's,
// damaged).
type OperatorStatus struct {
	Fingerprint string    `json:"operator_fingerprint,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Problem     string    `json:"problem,omitempty"`
}

// DirectoryReads is one federation's read side.
type DirectoryReads struct {
	Seed        string                 `json:"seed"`
	Directories []dirclient.ReadStatus `json:"directories"`
}

// CXStatus summarises IICP-CX on the serving side.
type CXStatus struct {
	KeyID    string `json:"key_id,omitempty"`
	NotAfter string `json:"not_after,omitempty"`
	// Opened counts sealed task bodies decrypted; Failures counts refused
	// envelopes by reason (never payload content).
	Opened   uint64            `json:"opened"`
	Failures map[string]uint64 `json:"failures,omitempty"`
}

// MeshStatus summarises the libp2p side.
type MeshStatus struct {
	Enabled  bool     `json:"enabled"`
	PeerID   string   `json:"peer_id,omitempty"`
	Addrs    []string `json:"addrs,omitempty"`
	Peers    int      `json:"peers"`
	Provided bool     `json:"provided"`
	// Connections is the number of open libp2p connections.
	Connections int `json:"connections"`
	// Events are the mesh's counters (adverts, rejections by reason, calls).
	Events map[string]uint64 `json:"events,omitempty"`
	// MembershipExpiresAt is when this node's mesh membership credential
	// expires (absent: it holds none); it renews at half-life.
	MembershipExpiresAt *time.Time `json:"membership_expires_at,omitempty"`
}

// Peer is one row of GET /admin/v1/peers.
type Peer struct {
	PeerID        string   `json:"peer_id"`
	NodeID        string   `json:"node_id,omitempty"`
	Region        string   `json:"region,omitempty"`
	Intents       []string `json:"intents"`
	Models        []string `json:"models,omitempty"`
	Load          float64  `json:"load"`
	ActiveJobs    int      `json:"active_jobs"`
	MaxConcurrent int      `json:"max_concurrent"`
	Available     bool     `json:"available"`
	Addrs         []string `json:"addrs,omitempty"`
	// Conns are the remote addresses of the open connections to the
	// peer (tcp or quic-v1: on a LAN the node dials TCP first).
	Conns    []string  `json:"conns,omitempty"`
	RTTMs    float64   `json:"rtt_ms,omitempty"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	FromDHT  bool      `json:"from_dht,omitempty"`
	Breaker  string    `json:"breaker,omitempty"`
	// Operator is the fingerprint of the operator key the peer's advert
	// proved (a verified delegation); SameOperator: it is this node's own
	// operator, so the node serves the peer and sends it tasks without a
	// directory.
	Operator     string `json:"operator_fingerprint,omitempty"`
	SameOperator bool   `json:"same_operator,omitempty"`
}

// CallRequest is POST /admin/v1/call. Payload is passed through to the
// serving node and never logged.
type CallRequest struct {
	Intent    string          `json:"intent"`
	Payload   json.RawMessage `json:"payload"`
	Model     string          `json:"model,omitempty"`
	TimeoutMs int64           `json:"timeout_ms"`
	QoS       string          `json:"qos,omitempty"`
	// AllowPlaintext lets the HTTP path reach nodes that advertise no
	// IICP-CX key (iicp-confidentiality.md §6 override; the default refuses).
	AllowPlaintext bool `json:"allow_plaintext,omitempty"`
	// Stream asks for the output as it is generated (stream.go).
	Stream bool `json:"stream,omitempty"`
	// Remote keeps the task off the daemon's own engine even when it
	// serves the intent best (route.Query.Remote).
	Remote bool `json:"remote,omitempty"`
}

// Paths a call can take.
const (
	PathMesh = "mesh"
	PathHTTP = "http"
	// PathLocal: this node served it (it serves the intent and was the
	// best choice, or no other node could).
	PathLocal = "local"
)

// CallResult says how the task was served and carries the node's RESPONSE.
type CallResult struct {
	// Path is PathMesh, PathHTTP or PathLocal.
	Path     string `json:"path"`
	NodeID   string `json:"node_id,omitempty"`
	PeerID   string `json:"peer_id,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Attempts int    `json:"attempts"`
	// Encrypted: the HTTP path sealed the payload with IICP-CX. The mesh
	// path is end-to-end encrypted by the libp2p secure channel instead.
	Encrypted bool           `json:"encrypted"`
	Response  *wire.Response `json:"response"`
}

// FromRoute reports a router's final answer as a CallResult.
func FromRoute(res *route.Result) *CallResult {
	return &CallResult{Path: string(res.Path), NodeID: res.NodeID, PeerID: res.PeerID, Endpoint: res.Endpoint,
		Attempts: res.Attempts, Encrypted: res.Encrypted, Response: res.Response}
}
