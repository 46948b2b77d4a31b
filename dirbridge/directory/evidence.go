package directory

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// Evidence that does not come from a node about itself: proxy telemetry
// (iicp-telemetry.md §T4, telemetry.go) and peer audit reports
// (iicp-semantics.md §11.5–§11.8, iicp-dir.md §3.9, audit.go). Both are
// separate evidence dimensions: neither changes the outcome-v2
// reputation_score (§11.2, REP-08). Numbers the spec leaves open are in
// docs/spec-decisions.md ("## directory: audit reports and telemetry").
const (
	// reporterMinReputation is the §11.7/§11.8 reputation gate (RT-03b/05b).
	reporterMinReputation = 0.55
	// defaultReporterMinAge is the §11.7/§11.8 age gate: 3 days since the
	// reporter's first registration.
	defaultReporterMinAge = 72 * time.Hour
	// auditWindow is the §11.5 24-hour window (per reporter and per target).
	auditWindow = 24 * time.Hour
	// auditMaxReporters is the §11.5 per-target global cap.
	auditMaxReporters = 2
	// auditRetention keeps the append-only audit log this long.
	auditRetention = 30 * 24 * time.Hour
	// telemetryWindow is the §T4.2 rolling quorum window.
	telemetryWindow = 7 * 24 * time.Hour
	// telemetryQuorum is the §T4.2 number of distinct proxies.
	telemetryQuorum = 3
	// telemetryMedianWindow is the §T4.3 RECOMMENDED median window.
	telemetryMedianWindow = 24 * time.Hour
	// Outlier weighting (§T4.3): ≥ 10 prior observations by the proxy,
	// latency above 3 × median → α × 0.1.
	outlierMinObservations = 10
	outlierFactor          = 3.0
	outlierWeight          = 0.1
	// defaultTelemetryAlpha is the ratified EMA factor; the configurable
	// range is [minTelemetryAlpha, maxTelemetryAlpha] (§T4.2).
	defaultTelemetryAlpha = 0.1
	minTelemetryAlpha     = 0.05
	maxTelemetryAlpha     = 0.3
	// telemetrySpacing: one proxy moves one node's EMA at most once per
	// spacing; reports in between are recorded and count as observations.
	telemetrySpacing = 30 * time.Second
	// Per-reporter request budgets (per minute).
	telemetryPerMin   = 120
	auditReportPerMin = 30
)

const evidenceSchema = `
CREATE TABLE IF NOT EXISTS proxy_tokens (
	node_id     TEXT PRIMARY KEY,
	token_hash  BLOB NOT NULL,
	token_index TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS telemetry_reports (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id       TEXT NOT NULL,
	proxy_node_id TEXT NOT NULL,
	independence  TEXT NOT NULL,
	latency_ms    REAL NOT NULL,
	tokens        INTEGER NOT NULL,
	status        TEXT NOT NULL,
	qos_met       INTEGER NOT NULL,
	eligible      INTEGER NOT NULL,
	weight        REAL NOT NULL,
	at            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_reports_node ON telemetry_reports(node_id, at);
CREATE INDEX IF NOT EXISTS telemetry_reports_age ON telemetry_reports(at);
CREATE TABLE IF NOT EXISTS telemetry_latency (
	node_id             TEXT PRIMARY KEY,
	observed_latency_ms REAL NOT NULL,
	updated_at          INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_reports (
	id                          INTEGER PRIMARY KEY AUTOINCREMENT,
	reporter_node_id            TEXT NOT NULL,
	target_node_id              TEXT NOT NULL,
	independence                TEXT NOT NULL,
	finding                     TEXT NOT NULL,
	integrity_evidence_accepted INTEGER NOT NULL,
	delta_suppressed            INTEGER NOT NULL,
	reason                      TEXT NOT NULL,
	at                          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_reports_target ON audit_reports(target_node_id, at);
CREATE INDEX IF NOT EXISTS audit_reports_pair ON audit_reports(reporter_node_id, target_node_id, at);
`

// evidenceBook keeps proxy tokens, telemetry and audit reports in their
// own tables of the directory database, and in memory what discover
// shows on every answer (observed latency, accepted integrity findings).
type evidenceBook struct {
	db    *sql.DB
	locks keyedMutex // per target node: quorum check and update are one step

	mu        sync.RWMutex
	proxies   map[string]proxyCred   // token index → credential
	proxyOf   map[string]string      // node_id → token index
	latency   map[string]float64     // node_id → observed_latency_ms
	integrity map[string][]time.Time // target → accepted findings (last 24 h)
	applied   map[string]time.Time   // proxy|node → last EMA update
	reporters map[string]int         // node_id → independent eligible reporters (last report)

	// gen changes whenever a discover-visible value changes, invalidating
	// cached discover fragments (rank.go).
	gen atomic.Uint64

	telemetryLimit, auditLimit *httpx.Limiter
}

// proxyCred is a stored proxy_token: bcrypt hash, owner, and whether a
// bcrypt check has passed (then the HMAC index alone identifies it).
type proxyCred struct {
	nodeID   string
	hash     []byte
	verified bool
}

func openEvidence(ctx context.Context, db *sql.DB, now time.Time) (*evidenceBook, error) {
	if _, err := db.ExecContext(ctx, evidenceSchema); err != nil {
		return nil, fmt.Errorf("applying evidence schema: %w", err)
	}
	b := &evidenceBook{
		db: db, proxies: map[string]proxyCred{}, proxyOf: map[string]string{},
		latency: map[string]float64{}, reporters: map[string]int{}, integrity: map[string][]time.Time{}, applied: map[string]time.Time{},
		telemetryLimit: httpx.NewLimiter(telemetryPerMin, time.Minute, 0),
		auditLimit:     httpx.NewLimiter(auditReportPerMin, time.Minute, 0),
	}
	if err := b.load(ctx, now); err != nil {
		return nil, err
	}
	return b, nil
}

// load fills the in-memory views from the tables.
func (b *evidenceBook) load(ctx context.Context, now time.Time) error {
	err := queryRows(ctx, b.db, `SELECT node_id, token_hash, token_index FROM proxy_tokens`, nil, func(r *sql.Rows) error {
		var id, ix string
		var hash []byte
		if err := r.Scan(&id, &hash, &ix); err != nil {
			return err
		}
		b.proxies[ix], b.proxyOf[id] = proxyCred{nodeID: id, hash: hash}, ix
		return nil
	})
	if err == nil {
		err = queryRows(ctx, b.db, `SELECT node_id, observed_latency_ms FROM telemetry_latency`, nil, func(r *sql.Rows) error {
			var id string
			var v float64
			err := r.Scan(&id, &v)
			b.latency[id] = v
			return err
		})
	}
	if err == nil {
		err = queryRows(ctx, b.db, `SELECT target_node_id, at FROM audit_reports WHERE integrity_evidence_accepted = 1 AND at >= ?`,
			[]any{now.Add(-auditWindow).UnixMilli()}, func(r *sql.Rows) error {
				var id string
				var at int64
				err := r.Scan(&id, &at)
				b.integrity[id] = append(b.integrity[id], time.UnixMilli(at))
				return err
			})
	}
	if err != nil {
		return fmt.Errorf("loading evidence: %w", err)
	}
	return nil
}

// queryRows runs q and calls fn for every row.
func queryRows(ctx context.Context, db *sql.DB, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// prune drops telemetry beyond its window and audit rows beyond their
// retention, and forgets expired in-memory marks.
func (b *evidenceBook) prune(ctx context.Context, now time.Time) error {
	if _, err := b.db.ExecContext(ctx, `DELETE FROM telemetry_reports WHERE at < ?`, now.Add(-telemetryWindow).UnixMilli()); err != nil {
		return fmt.Errorf("pruning telemetry: %w", err)
	}
	if _, err := b.db.ExecContext(ctx, `DELETE FROM audit_reports WHERE at < ?`, now.Add(-auditRetention).UnixMilli()); err != nil {
		return fmt.Errorf("pruning audit reports: %w", err)
	}
	b.mu.Lock()
	changed := false
	for id, marks := range b.integrity {
		kept := marks[:0]
		for _, at := range marks {
			if now.Sub(at) < auditWindow {
				kept = append(kept, at)
			}
		}
		if changed = changed || len(kept) != len(marks); len(kept) == 0 {
			delete(b.integrity, id)
		} else {
			b.integrity[id] = kept
		}
	}
	for k, at := range b.applied {
		if now.Sub(at) >= telemetrySpacing {
			delete(b.applied, k)
		}
	}
	b.mu.Unlock()
	b.telemetryLimit.Sweep(now)
	b.auditLimit.Sweep(now)
	if changed {
		b.gen.Add(1)
	}
	return nil
}

// evidenceView is what discover and node detail show of a node's
// third-party evidence (embedded in publicNode).
type evidenceView struct {
	// ObservedLatencyMs is the quorum-gated proxy EMA (§T4.2); null until
	// three independent eligible proxies reported.
	ObservedLatencyMs *float64 `json:"observed_latency_ms"`
	// LatencyEstimateMs and LatencyBasis follow DIR-EVIDENCE-02/03.
	LatencyEstimateMs *int64 `json:"latency_estimate_ms"`
	LatencyBasis      string `json:"latency_estimate_basis"`
	// LatencyReporters is the quorum count (distinct independent eligible
	// proxies in the 7-day window) as of the node's latest report.
	LatencyReporters int            `json:"latency_reporters"`
	Integrity        *integrityView `json:"integrity_evidence,omitempty"`
}

// integrityView counts accepted (not suppressed) audit findings in the
// last 24 h: at most auditMaxReporters per finding by the §11.5 cap.
type integrityView struct {
	DeclarationDivergence int    `json:"declaration_divergence_24h"`
	Basis                 string `json:"basis"`
}

func (b *evidenceBook) view(nodeID string, now time.Time) evidenceView {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v := evidenceView{LatencyBasis: "none", LatencyReporters: b.reporters[nodeID]}
	if l, ok := b.latency[nodeID]; ok {
		ms, est := roundRep(l), int64(l+0.5)
		v.ObservedLatencyMs, v.LatencyEstimateMs, v.LatencyBasis = &ms, &est, "multi_proxy_ema"
	}
	n := 0
	for _, at := range b.integrity[nodeID] {
		if now.Sub(at) < auditWindow {
			n++
		}
	}
	if n > 0 {
		v.Integrity = &integrityView{DeclarationDivergence: n, Basis: "peer_audit_report"}
	}
	return v
}

// independenceKey is what makes two reporters distinct: the verified
// operator when the node has one (one operator's nodes count once), else
// the node itself (§T4.2 "distinct proxy_node_id").
func independenceKey(rec *NodeRecord, now time.Time) string {
	if k := rec.operatorAt(now); k != "" {
		return "operator:" + k
	}
	return "node:" + rec.NodeID
}

// reporterEligible applies the §11.7/§11.8 gates — registered for the
// minimum age (directory-observed) and reputation ≥ 0.55 — and refuses a
// reporter bound to the target's own operator (its report would be the
// §3 self-reporting attack by another node).
func (s *Server) reporterEligible(e, target *entry, now time.Time) (bool, string) {
	if k := e.rec.operatorAt(now); k != "" && k == target.rec.operatorAt(now) {
		return false, "reporter_same_operator_as_target"
	}
	if s.cfg.ReporterMinAge > 0 && now.Sub(e.rec.RegisteredAt) < s.cfg.ReporterMinAge {
		return false, "reporter_too_new"
	}
	if e.state.Load().Reputation < reporterMinReputation {
		return false, "reporter_reputation_below_gate"
	}
	return true, ""
}

// validateEvidence checks the reporter gate and the EMA factor.
func (c *Config) validateEvidence() error {
	if c.ReporterMinAge < defaultReporterMinAge && !c.Dev {
		return fmt.Errorf("directory: reporter_min_age %v is below the 72h iicp-semantics.md §11.7/§11.8 require; raise directory_server.reporter_min_age (shorter only with --dev)",
			max(c.ReporterMinAge, 0))
	}
	if math.IsNaN(c.TelemetryAlpha) || c.TelemetryAlpha < minTelemetryAlpha || c.TelemetryAlpha > maxTelemetryAlpha {
		return fmt.Errorf("directory: telemetry_alpha %v outside [%v, %v] (iicp-telemetry.md §T4.2)", c.TelemetryAlpha, minTelemetryAlpha, maxTelemetryAlpha)
	}
	return nil
}

// observed is the node's quorum-gated observed latency, nil without one.
func (b *evidenceBook) observed(nodeID string) *float64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if l, ok := b.latency[nodeID]; ok {
		return &l
	}
	return nil
}
