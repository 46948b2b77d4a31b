package federation

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/wire"
)

// RegisterPayload is the REGISTER event payload (S.13 §5.4). It carries the
// discover-relevant registration, including capabilities (#438: without
// them post-bootstrap nodes are invisible on replicas), and nothing secret:
// no token, no credential, no observed client address. node_id is inside the
// payload because the §5.1 envelope has no node field and only signed bytes
// may decide which node a change applies to (docs/spec-decisions.md).
type RegisterPayload struct {
	NodeID              string                     `json:"node_id"`
	Endpoint            string                     `json:"endpoint"`
	TransportEndpoint   string                     `json:"transport_endpoint,omitempty"`
	Region              string                     `json:"region"`
	CIPConformanceLevel string                     `json:"cip_conformance_level,omitempty"`
	CIPPolicy           json.RawMessage            `json:"cip_policy,omitempty"`
	Pricing             json.RawMessage            `json:"pricing,omitempty"`
	Capabilities        []wire.Capability          `json:"capabilities"`
	Limits              *wire.Limits               `json:"limits,omitempty"`
	Availability        []wire.AvailabilityWindow  `json:"availability,omitempty"`
	CXPublicKey         json.RawMessage            `json:"cx_public_key,omitempty"`
	Extensions          map[string]json.RawMessage `json:"extensions,omitempty"`
	// Public descriptive fields that discover shows in its dispatch view,
	// carried so a replica serves the same views (additive to §5.4).
	PublicKey             string `json:"public_key,omitempty"`
	TransportMethod       string `json:"transport_method,omitempty"`
	Backend               string `json:"backend,omitempty"`
	SDKLanguage           string `json:"sdk_language,omitempty"`
	SDKVersion            string `json:"sdk_version,omitempty"`
	ImplementationName    string `json:"implementation_name,omitempty"`
	ImplementationVersion string `json:"implementation_version,omitempty"`
	SDKCompatVersion      string `json:"sdk_compatibility_version,omitempty"`
	// RegisteredAt is the node's first registration (RFC 3339); a refresh
	// keeps it.
	RegisteredAt string `json:"registered_at,omitempty"`
}

// DeregisterPayload is the DEREGISTER payload (S.13 §5.4 plus the node_id
// and reason of iicp-dir.md §3.7).
type DeregisterPayload struct {
	NodeID   string `json:"node_id"`
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// CreditAwardPayload is the CREDIT_AWARD payload (S.13 §5.4).
type CreditAwardPayload struct {
	NodeID          string  `json:"node_id"`
	TaskID          string  `json:"task_id"`
	TokensUsed      int64   `json:"tokens_used"`
	Amount          float64 `json:"amount"`
	NewBalance      float64 `json:"new_balance"`
	CIPParentTaskID *string `json:"cip_parent_task_id"`
	CIPSessionKey   *string `json:"cip_session_key"`
}

// ReputationDecayPayload is the REPUTATION_DECAY payload: the node and its
// reputation after the hourly decay.
type ReputationDecayPayload struct {
	NodeID          string  `json:"node_id"`
	ReputationScore float64 `json:"reputation_score"`
}

// ReplicaPayload is the REPLICA_REGISTERED / REPLICA_DEREGISTERED payload
// (S.13 §7.1 step 5, §7.2 step 4).
type ReplicaPayload struct {
	ReplicaID    string `json:"replica_id"`
	DID          string `json:"did"`
	Endpoint     string `json:"endpoint,omitempty"`
	TrustTier    string `json:"trust_tier,omitempty"`
	RegisteredAt string `json:"registered_at,omitempty"`
	RegionHint   string `json:"region_hint,omitempty"`
}

// The federated state schema, shared by seed and replica: what the events
// say, materialised. fed_nodes.record is the REGISTER payload. live is
// no longer written (a replica's ephemeral node state lives in its
// directory's store, ADR-033); the column stays so older files open as
// they are.
const stateSchema = `
CREATE TABLE IF NOT EXISTS fed_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fed_nodes (
	node_id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL,
	ts_ms INTEGER NOT NULL,
	record BLOB NOT NULL,
	credit_balance REAL,
	reputation REAL,
	live BLOB
);
CREATE TABLE IF NOT EXISTS fed_replicas (
	replica_id TEXT PRIMARY KEY,
	did TEXT NOT NULL UNIQUE,
	endpoint TEXT NOT NULL,
	trust_tier TEXT NOT NULL,
	status TEXT NOT NULL,
	registered_at TEXT NOT NULL,
	region_hint TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS fed_observations (
	seq INTEGER PRIMARY KEY,
	node_id TEXT NOT NULL,
	payload BLOB NOT NULL
);`

// openDB opens (creating, mode 0600) a SQLite file with WAL,
// synchronous=FULL and one connection:
// SQLite has one writer, and every hot read is served from memory.
func openDB(ctx context.Context, path string, schemas ...string) (*sql.DB, error) {
	if err := directory.SecureDBFile(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(5000)")
	// FULL: an event is on disk before it is acknowledged or leaves the
	// seed for replicas; with NORMAL a power loss could drop an event a
	// replica already holds and fork the log.
	q.Add("_pragma", "synchronous(FULL)")
	// 32 MiB of page cache: a replay touches every node row of a 10k-node
	// state, which the 2 MiB default re-reads from the OS per page.
	q.Add("_pragma", "cache_size(-32768)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	db.SetMaxOpenConns(1)
	for _, s := range append([]string{stateSchema}, schemas...) {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("applying schema: %w", err)
		}
	}
	return db, nil
}

func getMeta(ctx context.Context, q queryer, k string) (string, bool, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT v FROM fed_meta WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("reading meta %s: %w", k, err)
	}
	return v, true, nil
}

func setMeta(ctx context.Context, tx *sql.Tx, k, v string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO fed_meta (k, v) VALUES (?, ?)
		ON CONFLICT(k) DO UPDATE SET v = excluded.v`, k, v); err != nil {
		return fmt.Errorf("writing meta %s: %w", k, err)
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// execer is what applying an event writes through: a *sql.Tx, or a
// stmtCache over one for a page of events.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// stmtCache prepares each statement once per transaction: replaying a page
// of 1000 events otherwise parses the same SQL 1000 times (a third of the
// replica's SQLite time in the 100k-event profile).
type stmtCache struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func newStmtCache(tx *sql.Tx) *stmtCache { return &stmtCache{tx: tx, stmts: map[string]*sql.Stmt{}} }

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, ok := c.stmts[query]
	if !ok {
		var err error
		if st, err = c.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		c.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}

// close releases the statements (before the transaction ends).
func (c *stmtCache) close() {
	for _, st := range c.stmts {
		_ = st.Close()
	}
}

// StateChange is what applying one event did to the federated state; the
// replica's Sink (the directory's store) consumes it.
type StateChange struct {
	Type   EventType
	Seq    int64
	TsMs   int64
	NodeID string
	// Register is set on REGISTER.
	Register *RegisterPayload
	// Replica is set on REPLICA_REGISTERED / REPLICA_DEREGISTERED.
	Replica *ReplicaPayload
	// CreditBalance / Reputation are set on CREDIT_AWARD / REPUTATION_DECAY.
	CreditBalance *float64
	Reputation    *float64
}

// applyEvent materialises ev into the state tables inside tx. Every event
// is idempotent state-setting (replace wholesale, delete, set), so applying
// an event whose effect a snapshot already contains changes nothing.
func applyEvent(ctx context.Context, tx execer, ev *Event) (*StateChange, error) {
	ch := &StateChange{Type: ev.EventType, Seq: ev.Seq, TsMs: ev.TsMs}
	var err error
	switch ev.EventType {
	case EventRegister:
		err = applyRegister(ctx, tx, ev, ch)
	case EventDeregister:
		var p DeregisterPayload
		if err = decodePayload(ev, &p, &p.NodeID); err == nil {
			ch.NodeID = p.NodeID
			_, err = tx.ExecContext(ctx, `DELETE FROM fed_nodes WHERE node_id = ?`, p.NodeID)
		}
	case EventCreditAward:
		var p CreditAwardPayload
		if err = decodePayload(ev, &p, &p.NodeID); err == nil {
			ch.NodeID, ch.CreditBalance = p.NodeID, &p.NewBalance
			_, err = tx.ExecContext(ctx, `UPDATE fed_nodes SET credit_balance = ? WHERE node_id = ?`, p.NewBalance, p.NodeID)
		}
	case EventReputationDecay:
		var p ReputationDecayPayload
		if err = decodePayload(ev, &p, &p.NodeID); err == nil {
			ch.NodeID, ch.Reputation = p.NodeID, &p.ReputationScore
			_, err = tx.ExecContext(ctx, `UPDATE fed_nodes SET reputation = ? WHERE node_id = ?`, p.ReputationScore, p.NodeID)
		}
	case EventReplicaRegistered, EventReplicaDeregistered:
		err = applyReplica(ctx, tx, ev, ch)
	case EventOperatorObserved:
		// Recorded for the audit trail, never acted on (S.13 §5.4).
		var p struct {
			NodeID string `json:"node_id"`
		}
		if err = json.Unmarshal(ev.Payload, &p); err == nil {
			ch.NodeID = p.NodeID
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO fed_observations (seq, node_id, payload) VALUES (?, ?, ?)`,
				ev.Seq, p.NodeID, []byte(ev.Payload))
		}
	default:
		return nil, &VerifyError{Seq: ev.Seq, Reason: ErrEventType}
	}
	if err != nil {
		return nil, fmt.Errorf("applying %s seq %d: %w", ev.EventType, ev.Seq, err)
	}
	return ch, nil
}

var errPayloadField = errors.New("payload lacks a required field")

// decodePayload decodes ev.Payload into v and requires *id to be set.
func decodePayload(ev *Event, v any, id *string) error {
	if err := json.Unmarshal(ev.Payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if *id == "" || len(*id) > maxIDLen {
		return fmt.Errorf("%w: %w", ErrMalformed, errPayloadField)
	}
	return nil
}

func applyRegister(ctx context.Context, tx execer, ev *Event, ch *StateChange) error {
	var p RegisterPayload
	if err := decodePayload(ev, &p, &p.NodeID); err != nil {
		return err
	}
	if p.Endpoint == "" {
		return fmt.Errorf("%w: endpoint", errPayloadField)
	}
	ch.NodeID, ch.Register = p.NodeID, &p
	// Re-registration replaces the record and keeps balance and reputation.
	_, err := tx.ExecContext(ctx, `INSERT INTO fed_nodes (node_id, seq, ts_ms, record) VALUES (?, ?, ?, ?)
		ON CONFLICT(node_id) DO UPDATE SET seq = excluded.seq, ts_ms = excluded.ts_ms, record = excluded.record`,
		p.NodeID, ev.Seq, ev.TsMs, []byte(ev.Payload))
	return err
}

func applyReplica(ctx context.Context, tx execer, ev *Event, ch *StateChange) error {
	var p ReplicaPayload
	if err := decodePayload(ev, &p, &p.ReplicaID); err != nil {
		return err
	}
	ch.Replica = &p
	if ev.EventType == EventReplicaDeregistered {
		// A tombstone, excluded from service (DIR-FED-25).
		_, err := tx.ExecContext(ctx, `UPDATE fed_replicas SET status = ? WHERE replica_id = ?`,
			string(ReplicaDecommissioned), p.ReplicaID)
		return err
	}
	if p.DID == "" || p.Endpoint == "" {
		return fmt.Errorf("%w: did/endpoint", errPayloadField)
	}
	tier := p.TrustTier
	if tier == "" {
		tier = TrustLow
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO fed_replicas (replica_id, did, endpoint, trust_tier, status, registered_at, region_hint)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(replica_id) DO UPDATE SET did = excluded.did, endpoint = excluded.endpoint,
			trust_tier = excluded.trust_tier, status = excluded.status, region_hint = excluded.region_hint`,
		p.ReplicaID, p.DID, p.Endpoint, tier, string(ReplicaActive), p.RegisteredAt, p.RegionHint)
	return err
}

// Trust tiers (S.13 §3).
const (
	TrustLow    = "low"
	TrustMedium = "medium"
	TrustHigh   = "high"
)

// ReplicaEntry is one row of the trusted-replicas registry (S.13 §6.4).
type ReplicaEntry struct {
	ReplicaID    string `json:"replica_id"`
	DID          string `json:"did"`
	Endpoint     string `json:"endpoint"`
	TrustTier    string `json:"trust_tier"`
	RegisteredAt string `json:"registered_at"`
	RegionHint   string `json:"region_hint,omitempty"`
	Status       string `json:"-"`
}

func loadReplicas(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, activeOnly bool) ([]ReplicaEntry, error) {
	query := `SELECT replica_id, did, endpoint, trust_tier, registered_at, region_hint, status FROM fed_replicas`
	if activeOnly {
		query += ` WHERE status = 'active'`
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY registered_at, replica_id`)
	if err != nil {
		return nil, fmt.Errorf("loading replicas: %w", err)
	}
	defer rows.Close()
	out := []ReplicaEntry{}
	for rows.Next() {
		var e ReplicaEntry
		if err := rows.Scan(&e.ReplicaID, &e.DID, &e.Endpoint, &e.TrustTier, &e.RegisteredAt, &e.RegionHint, &e.Status); err != nil {
			return nil, fmt.Errorf("scanning replica: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
