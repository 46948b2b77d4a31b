package directory

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Operator identity (iicp-dir.md §3.1 operator_delegation, ADR-045 Phase A;
// §3.4 operator_display_name / operator_fingerprint; iicp-recognition.md
// §7 POST /v1/operator/rename). The delegation format and its offline
// verification are wire's (wire.VerifyDelegation), shared with the node
// side. The verified key is stored on the node record as OperatorPubKey
// and is directory-private: views serve only the display name, a short
// fingerprint and the trust tier.

// trustTierDIDKey is the Phase A tier: the operator key is self-asserted
// (did:key); did_web (domain-verified) is Phase B.
const trustTierDIDKey = "did_key"

// renameSkew is the accepted |now − ts| of a rename (iicp-recognition.md §7).
const renameSkew = 300 * time.Second

// operatorSchema keeps display names keyed by operator key (standard
// base64) with the ts of the rename that set them.
const operatorSchema = `
CREATE TABLE IF NOT EXISTS operators (
	operator_pubkey TEXT PRIMARY KEY,
	display_name    TEXT NOT NULL,
	renamed_ts      INTEGER NOT NULL
);`

// operatorBook holds display names in memory (discover reads them on
// every answer) and serialises operator-bound registrations so the
// per-operator node cap cannot be raced.
type operatorBook struct {
	db       *sql.DB
	regMu    sync.Mutex // held from the cap check to the stored registration
	mu       sync.RWMutex
	names    map[string]operatorName
	maxNodes int
	// gen changes with every rename, invalidating cached discover
	// fragments (rank.go).
	gen atomic.Uint64
	// keys is the rotation state of operator keys (operator_rotate.go).
	keys *keyLifecycle
}

type operatorName struct {
	name string
	ts   int64
}

func openOperatorBook(ctx context.Context, db *sql.DB, maxNodes int) (*operatorBook, error) {
	if _, err := db.ExecContext(ctx, operatorSchema); err != nil {
		return nil, fmt.Errorf("operators table: %w", err)
	}
	b := &operatorBook{db: db, names: map[string]operatorName{}, maxNodes: maxNodes}
	var err error
	if b.keys, err = loadKeyLifecycle(ctx, db); err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT operator_pubkey, display_name, renamed_ts FROM operators`)
	if err != nil {
		return nil, fmt.Errorf("loading operators: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n operatorName
		if err := rows.Scan(&k, &n.name, &n.ts); err != nil {
			return nil, fmt.Errorf("loading operators: %w", err)
		}
		b.names[k] = n
	}
	return b, rows.Err()
}

// verifiedOperator returns the operator key (standard base64) a delegation
// proves for nodeID at now, or "" and why not. Per §3.1 an invalid
// delegation leaves the node operator-unverified; it does not reject the
// registration.
func verifiedOperator(d *wire.OperatorDelegation, nodeID string, now time.Time) (string, error) {
	if d == nil {
		return "", nil
	}
	pub, err := wire.VerifyDelegation(d, nodeID, now.Unix())
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}

// operatorAt is the operator the node shows as at now: the bound key
// while its latest delegation is unexpired, else "" (the node stays
// secured by the key; it no longer presents as the operator's).
func (r *NodeRecord) operatorAt(now time.Time) string {
	if r.OperatorPubKey == "" || now.Unix() >= r.OperatorNotAfter {
		return ""
	}
	return r.OperatorPubKey
}

// operatorUntil is how long a node's encoded view stays right as far as
// its operator goes: until its delegation lapses.
func operatorUntil(r *NodeRecord, now time.Time) int64 {
	if r.operatorAt(now) != "" {
		return r.OperatorNotAfter
	}
	return math.MaxInt64
}

// operatorView is the public operator block of a node view.
type operatorView struct {
	DisplayName *string `json:"operator_display_name"`
	Fingerprint *string `json:"operator_fingerprint"`
	TrustTier   *string `json:"operator_trust_tier"`
}

// view is what discover and node detail say about a node's operator: the
// trust tier when operator-bound, the display name and fingerprint only
// when the operator has set a name (§3.4), never the key itself.
func (b *operatorBook) view(key string) operatorView {
	if key == "" {
		return operatorView{}
	}
	tier := trustTierDIDKey
	v := operatorView{TrustTier: &tier}
	b.mu.RLock()
	n, ok := b.names[key]
	b.mu.RUnlock()
	if ok {
		name, fp := n.name, fingerprintOf(key)
		v.DisplayName, v.Fingerprint = &name, &fp
	}
	return v
}

func fingerprintOf(key string) string {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return ""
	}
	return wire.OperatorFingerprint(ed25519.PublicKey(raw))
}

// errOperatorFull refuses a node beyond the operator's cap.
var errOperatorFull = errors.New("operator cap reached")

// admit reports whether nodeID may be bound to key: always when the node
// already is, else while the operator has fewer than maxNodes registered
// nodes with an unexpired delegation. The caller holds regMu until the
// registration is stored.
func (b *operatorBook) admit(ix *index, key, nodeID string, now time.Time) error {
	if key == "" || b.maxNodes <= 0 {
		return nil
	}
	if e := ix.get(nodeID); e != nil && e.rec.operatorAt(now) == key {
		return nil
	}
	n := 0
	ix.forAll(func(e *entry) {
		if e.rec.operatorAt(now) == key {
			n++
		}
	})
	if n >= b.maxNodes {
		return errOperatorFull
	}
	return nil
}

// handleOperatorRename is POST /v1/operator/rename: an operator with at
// least one registered node sets its public display_name, signed by the
// operator key, ts within ±300 s and newer than the last rename.
func (s *Server) handleOperatorRename(w http.ResponseWriter, r *http.Request) {
	now, key := s.now(), s.limitKey(r)
	if ok, wait := s.regLimit.Allow(key, now); !ok {
		s.metrics.rateLimited.WithLabelValues("operator_rename").Inc()
		httpx.RateLimited(w, "too many operator requests from this source address", wait)
		return
	}
	var req wire.OperatorRename
	if e := decodeBody(w, r, maxSmallBody, &req); e != nil {
		httpx.WriteError(w, e)
		return
	}
	pub, e := wire.VerifyRename(&req)
	if e != nil {
		httpx.WriteError(w, e)
		return
	}
	if d := now.Sub(time.Unix(req.TS, 0)); d > renameSkew || d < -renameSkew {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "ts is more than 300 s from the directory's clock").WithField("ts"))
		return
	}
	op := base64.StdEncoding.EncodeToString(pub)
	if e := s.operators.rename(r.Context(), s.store.idx, op, req.DisplayName, req.TS, now); e != nil {
		httpx.WriteError(w, e)
		return
	}
	s.log.Info("operator renamed", "operator_fingerprint", wire.OperatorFingerprint(pub))
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "operator_fingerprint": wire.OperatorFingerprint(pub), "display_name": req.DisplayName})
}

// rename stores the display name of a known operator (one with a bound
// node) when ts is newer than the stored one, so a captured rename cannot
// be replayed to undo a later one.
func (b *operatorBook) rename(ctx context.Context, ix *index, op, name string, ts int64, now time.Time) *wire.Error {
	known := false
	ix.forAll(func(e *entry) { known = known || e.rec.operatorAt(now) == op })
	if !known {
		return wire.NewError(wire.CodeNotFound, "no registered node is delegated to this operator key")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.names[op]; ok && ts <= old.ts {
		return wire.NewError(wire.CodeConflict, "a rename with this or a later ts was already applied (replay)").WithField("ts")
	}
	_, err := b.db.ExecContext(ctx, `INSERT INTO operators (operator_pubkey, display_name, renamed_ts) VALUES (?, ?, ?)
		ON CONFLICT(operator_pubkey) DO UPDATE SET display_name = excluded.display_name, renamed_ts = excluded.renamed_ts`, op, name, ts)
	if err != nil {
		return wire.NewError(wire.CodeUnavailable, "storing the display name failed")
	}
	b.names[op] = operatorName{name: name, ts: ts}
	b.gen.Add(1)
	return nil
}
