package federation

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// SnapshotSchemaVersion is the §5.5 schema_version we emit and accept.
const SnapshotSchemaVersion = "v0.3.0"

// Snapshot is the GET /v1/snapshot body (S.13 §5.5): the federated state at
// snapshot_seq in one read transaction (DIR-FED-15). Two additive members
// make it verifiable end to end: head_event, the signed event at
// snapshot_seq, so a replica can verify the first tail event's prev_hash
// without the pruned history; and per-node registration, the exact REGISTER
// payload, so a replica rebuilds the node the event would have built.
// Replicas mirror the trusted-replica registry from replicas.
type Snapshot struct {
	SchemaVersion string               `json:"schema_version"`
	SnapshotSeq   int64                `json:"snapshot_seq"`
	SnapshotTsMs  int64                `json:"snapshot_ts_ms"`
	GenesisHash   string               `json:"genesis_hash"`
	HeadEvent     *Event               `json:"head_event"`
	Nodes         []SnapshotNode       `json:"nodes"`
	Capabilities  []SnapshotCapability `json:"capabilities"`
	Replicas      []SnapshotReplica    `json:"replicas"`
}

// SnapshotNode is one node row of a snapshot. The dynamic members (load,
// active_jobs, available, last_seen, reputation) are the seed's ephemeral
// view at generation time (ADR-033), present when the seed has a LiveSource.
// completed_tasks_count and sla_p95_ms are additive: discover's probation
// filter and dispatch view need them on a replica too. load is omitted when
// the node never reported one (discover then derives it from active_jobs).
type SnapshotNode struct {
	NodeID          string          `json:"node_id"`
	Endpoint        string          `json:"endpoint"`
	Region          string          `json:"region"`
	Load            *float64        `json:"load,omitempty"`
	ActiveJobs      *int            `json:"active_jobs,omitempty"`
	Available       bool            `json:"available"`
	LastSeen        string          `json:"last_seen,omitempty"`
	ReputationScore *float64        `json:"reputation_score,omitempty"`
	ReputationTier  string          `json:"reputation_tier,omitempty"`
	CreditBalance   *float64        `json:"credit_balance,omitempty"`
	CompletedTasks  *int64          `json:"completed_tasks_count,omitempty"`
	SLAP95Ms        *int64          `json:"sla_p95_ms,omitempty"`
	CIPPolicy       json.RawMessage `json:"cip_policy,omitempty"`
	Pricing         json.RawMessage `json:"pricing,omitempty"`
	RegisteredSeq   int64           `json:"registered_seq"`
	RegisteredTsMs  int64           `json:"registered_ts_ms"`
	Registration    json.RawMessage `json:"registration"`
}

// SnapshotCapability is one capability row (S.13 §5.5 capabilities[]).
type SnapshotCapability struct {
	NodeID string `json:"node_id"`
	wire.Capability
}

// SnapshotReplica is a replica registry row including tombstones.
type SnapshotReplica struct {
	ReplicaEntry
	Status string `json:"status"`
}

// LiveState is a node's ephemeral heartbeat state on the seed.
type LiveState struct {
	NodeID         string
	Load           *float64 // nil: the node reported no load
	ActiveJobs     int
	Available      bool
	LastSeen       time.Time
	Reputation     *float64
	ReputationTier string
	CompletedTasks int64
	SLAP95Ms       *int64
}

// LiveSource supplies ephemeral node state for snapshots (the directory's
// in-memory index on the seed). Optional.
type LiveSource interface {
	LiveState(nodeID string) (LiveState, bool)
}

// LiveFeed lists the nodes heard from after t. A LiveSource that also
// implements it gets the seed to publish liveness digests (liveness.go).
type LiveFeed interface {
	LiveSince(t time.Time) []LiveState
}

// snapshot builds the snapshot in one read transaction so snapshot_seq and
// the rows agree exactly (DIR-FED-15, §5.5 "consistent point-in-time view").
func (l *eventLog) snapshot(ctx context.Context, live LiveSource) (*Snapshot, error) {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("beginning snapshot: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	snap := &Snapshot{SchemaVersion: SnapshotSchemaVersion, SnapshotTsMs: l.now().UnixMilli(), GenesisHash: GenesisRoot,
		Nodes: []SnapshotNode{}, Capabilities: []SnapshotCapability{}, Replicas: []SnapshotReplica{}}
	if v, ok, err := getMeta(ctx, tx, metaHeadSeq); err != nil {
		return nil, err
	} else if ok {
		if snap.SnapshotSeq, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("corrupt head seq: %w", err)
		}
	}
	if v, ok, err := getMeta(ctx, tx, metaGenesisHash); err != nil {
		return nil, err
	} else if ok {
		snap.GenesisHash = v
	}
	if snap.SnapshotSeq > 0 {
		ev, err := scanEvent(tx.QueryRowContext(ctx, `SELECT seq, event_id, event_type, ts_ms, payload, prev_hash, sig, signer_did
			FROM fed_events WHERE seq = ?`, snap.SnapshotSeq))
		if err != nil {
			return nil, fmt.Errorf("reading head event: %w", err)
		}
		snap.HeadEvent = &ev
	}
	if err := snapshotNodes(ctx, tx, snap, live); err != nil {
		return nil, err
	}
	reps, err := loadReplicas(ctx, tx, false)
	if err != nil {
		return nil, err
	}
	for _, r := range reps {
		snap.Replicas = append(snap.Replicas, SnapshotReplica{ReplicaEntry: r, Status: r.Status})
	}
	return snap, nil
}

func snapshotNodes(ctx context.Context, tx *sql.Tx, snap *Snapshot, live LiveSource) error {
	rows, err := tx.QueryContext(ctx, `SELECT node_id, seq, ts_ms, record, credit_balance, reputation FROM fed_nodes ORDER BY node_id`)
	if err != nil {
		return fmt.Errorf("reading nodes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n SnapshotNode
		var rec []byte
		var credit, rep sql.NullFloat64
		if err := rows.Scan(&n.NodeID, &n.RegisteredSeq, &n.RegisteredTsMs, &rec, &credit, &rep); err != nil {
			return fmt.Errorf("scanning node: %w", err)
		}
		var p RegisterPayload
		if err := json.Unmarshal(rec, &p); err != nil {
			return fmt.Errorf("decoding node record: %w", err)
		}
		n.Endpoint, n.Region, n.CIPPolicy, n.Pricing, n.Registration = p.Endpoint, p.Region, p.CIPPolicy, p.Pricing, rec
		n.Available = true
		if credit.Valid {
			n.CreditBalance = &credit.Float64
		}
		if rep.Valid {
			n.ReputationScore = &rep.Float64
		}
		if live != nil {
			if ls, ok := live.LiveState(n.NodeID); ok {
				jobs, done := ls.ActiveJobs, ls.CompletedTasks
				n.Load, n.ActiveJobs, n.Available, n.CompletedTasks, n.SLAP95Ms = ls.Load, &jobs, ls.Available, &done, ls.SLAP95Ms
				if !ls.LastSeen.IsZero() {
					n.LastSeen = formatLastSeen(ls.LastSeen)
				}
				if ls.Reputation != nil {
					n.ReputationScore, n.ReputationTier = ls.Reputation, ls.ReputationTier
				}
			}
		}
		snap.Nodes = append(snap.Nodes, n)
		for _, c := range p.Capabilities {
			snap.Capabilities = append(snap.Capabilities, SnapshotCapability{NodeID: n.NodeID, Capability: c})
		}
	}
	return rows.Err()
}

// formatLastSeen is RFC 3339 UTC with milliseconds: second precision would
// make a snapshot's last_seen older than the REGISTER it follows.
func formatLastSeen(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// HeaderSnapshotSig carries the seed's signature over a snapshot body.
// The spec proves snapshot provenance by TLS alone; a replica that must
// never serve state it could not verify (and that may sit behind a proxy)
// needs the same Ed25519 evidence the events carry (docs/spec-decisions.md).
const HeaderSnapshotSig = "X-IICP-Snapshot-Sig"

// snapshotDigest is SHA256("iicp:snapshot:v1:" + snapshot_seq + ":" + SHA256_hex(body)).
func snapshotDigest(seq int64, body []byte) [32]byte {
	bh := sha256.Sum256(body)
	return sha256.Sum256([]byte("iicp:snapshot:v1:" + strconv.FormatInt(seq, 10) + ":" + hex.EncodeToString(bh[:])))
}

// SignSnapshot returns the hex signature for a snapshot body.
func SignSnapshot(key ed25519.PrivateKey, seq int64, body []byte) string {
	d := snapshotDigest(seq, body)
	return hex.EncodeToString(ed25519.Sign(key, d[:]))
}

// ErrSnapshotSignature reports a snapshot whose signature does not verify.
var ErrSnapshotSignature = errors.New("snapshot signature invalid")

// VerifySnapshot decodes body after checking its signature, then checks the
// head event against the key and the snapshot's own seq.
func VerifySnapshot(pub ed25519.PublicKey, signerDID string, body []byte, sigHex string) (*Snapshot, error) {
	var probe struct {
		SnapshotSeq int64 `json:"snapshot_seq"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, fmt.Errorf("%w: decoding snapshot: %v", ErrMalformed, err)
	}
	sig, err := hex.DecodeString(sigHex)
	d := snapshotDigest(probe.SnapshotSeq, body)
	if err != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, d[:], sig) {
		return nil, ErrSnapshotSignature
	}
	var snap Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, fmt.Errorf("%w: decoding snapshot: %v", ErrMalformed, err)
	}
	if snap.SchemaVersion != SnapshotSchemaVersion {
		return nil, fmt.Errorf("%w: snapshot schema %q", ErrMalformed, snap.SchemaVersion)
	}
	if snap.SnapshotSeq > 0 {
		h := snap.HeadEvent
		if h == nil || h.Seq != snap.SnapshotSeq {
			return nil, fmt.Errorf("%w: head event does not match snapshot_seq", ErrMalformed)
		}
		if err := CheckShape(h); err != nil {
			return nil, err
		}
		if h.SignerDID != signerDID {
			return nil, &VerifyError{Seq: h.Seq, Reason: ErrSigner}
		}
		if err := VerifySignature(pub, h); err != nil {
			return nil, err
		}
	}
	return &snap, nil
}
