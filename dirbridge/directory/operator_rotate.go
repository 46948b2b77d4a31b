package directory

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// Operator key rotation (iicp-dir.md §3.16): POST /v1/operator/challenge
// issues a single-use nonce to a known operator key, POST
// /v1/operator/key/rotate moves the operator's identity to a successor key
// signed by both keys over that nonce. Every node bound to the old key is
// re-bound to the successor in one transaction (display name too); the old
// key becomes `rotated`: it can create no new claims, and a delegation it
// signed is honoured during the overlap window only, as the successor's,
// with not_after capped at the window's end, so nodes keep their operator
// while they are re-delegated (`meshnode operator rotate` re-delegates the
// node homes it is given). Numbers: docs/spec-decisions.md.
const (
	// challengeTTL: §3.16 "single-use and expire after 300 seconds".
	challengeTTL = 300 * time.Second
	// maxChallenges bounds outstanding nonces; past it the oldest go.
	maxChallenges = 4096
	// rotationOverlap is how long a rotated key's delegations still bind
	// (as the successor's): a week to re-delegate every node.
	rotationOverlap = 7 * 24 * time.Hour
)

const rotationSchema = `
CREATE TABLE IF NOT EXISTS operator_rotations (
	old_pubkey    TEXT PRIMARY KEY,
	new_pubkey    TEXT NOT NULL,
	rotated_at    INTEGER NOT NULL,
	overlap_until INTEGER NOT NULL
);`

// keyLifecycle is the operator keys' rotation state and the outstanding
// challenges.
type keyLifecycle struct {
	mu         sync.Mutex
	rotations  map[string]rotation // old key → its rotation
	challenges map[string]challenge
}

type rotation struct {
	successor    string
	overlapUntil int64
}

type challenge struct {
	operator string
	expires  time.Time
}

func loadKeyLifecycle(ctx context.Context, db *sql.DB) (*keyLifecycle, error) {
	if _, err := db.ExecContext(ctx, rotationSchema); err != nil {
		return nil, fmt.Errorf("operator_rotations table: %w", err)
	}
	k := &keyLifecycle{rotations: map[string]rotation{}, challenges: map[string]challenge{}}
	rows, err := db.QueryContext(ctx, `SELECT old_pubkey, new_pubkey, overlap_until FROM operator_rotations`)
	if err != nil {
		return nil, fmt.Errorf("loading operator rotations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var old string
		var r rotation
		if err := rows.Scan(&old, &r.successor, &r.overlapUntil); err != nil {
			return nil, err
		}
		k.rotations[old] = r
	}
	return k, rows.Err()
}

// current maps a key a delegation proved to the key it binds now: itself
// when never rotated; its latest successor while every rotation on the way
// is in its overlap window (notAfter capped at the window's end); "" once
// a window has closed. Chains are bounded by the number of rotations.
func (k *keyLifecycle) current(key string, notAfter int64, now time.Time) (string, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for range len(k.rotations) + 1 {
		r, ok := k.rotations[key]
		if !ok {
			return key, notAfter
		}
		if now.Unix() >= r.overlapUntil {
			return "", 0
		}
		key, notAfter = r.successor, min(notAfter, r.overlapUntil)
	}
	return "", 0
}

func (k *keyLifecycle) rotated(key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.rotations[key]
	return ok
}

// issue records a fresh nonce for operator.
func (k *keyLifecycle) issue(operator string, now time.Time) (string, time.Time) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	nonce, exp := base64.RawURLEncoding.EncodeToString(b), now.Add(challengeTTL)
	k.mu.Lock()
	defer k.mu.Unlock()
	for n, c := range k.challenges {
		if !now.Before(c.expires) || len(k.challenges) >= maxChallenges {
			delete(k.challenges, n)
		}
	}
	k.challenges[nonce] = challenge{operator: operator, expires: exp}
	return nonce, exp
}

// consume spends nonce for operator: true once, while unexpired.
func (k *keyLifecycle) consume(nonce, operator string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.challenges[nonce]
	delete(k.challenges, nonce)
	return ok && c.operator == operator && now.Before(c.expires)
}

// knownOperator reports whether key binds a registered node now.
func (s *Server) knownOperator(key string, now time.Time) bool {
	known := false
	s.store.idx.forAll(func(e *entry) { known = known || e.rec.operatorAt(now) == key })
	return known
}

// handleOperatorChallenge is POST /v1/operator/challenge {operator_pub}.
func (s *Server) handleOperatorChallenge(w http.ResponseWriter, r *http.Request) {
	now, ok := s.operatorRequest(w, r, "operator_challenge")
	if !ok {
		return
	}
	var req struct {
		OperatorPub string `json:"operator_pub"`
	}
	if e := decodeBody(w, r, maxSmallBody, &req); e != nil {
		httpx.WriteError(w, e)
		return
	}
	op := operatorKeyOf(req.OperatorPub)
	if op == "" {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "operator_pub must be a base64 Ed25519 public key").WithField("operator_pub"))
		return
	}
	if s.operators.keys.rotated(op) || !s.knownOperator(op, now) {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no registered node is delegated to this operator key"))
		return
	}
	nonce, exp := s.operators.keys.issue(op, now)
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, wire.OperatorChallenge{Nonce: nonce, ExpiresAt: exp.Unix(), OperatorFingerprint: fingerprintOf(op)})
}

// operatorRequest charges the source's registration budget (operator
// routes share it with rename) and returns the time.
func (s *Server) operatorRequest(w http.ResponseWriter, r *http.Request, route string) (time.Time, bool) {
	now := s.now()
	if ok, wait := s.regLimit.Allow(s.limitKey(r), now); !ok {
		s.metrics.rateLimited.WithLabelValues(route).Inc()
		httpx.RateLimited(w, "too many operator requests from this source address", wait)
		return now, false
	}
	return now, true
}

// operatorKeyOf normalises a base64 Ed25519 key (standard or URL-safe,
// padded or not) to standard padded base64; "" when it is not one.
func operatorKeyOf(s string) string {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
			return base64.StdEncoding.EncodeToString(raw)
		}
	}
	return ""
}

// handleOperatorKeyRotate is POST /v1/operator/key/rotate (§3.16).
func (s *Server) handleOperatorKeyRotate(w http.ResponseWriter, r *http.Request) {
	now, ok := s.operatorRequest(w, r, "operator_rotate")
	if !ok {
		return
	}
	var req wire.OperatorKeyRotate
	if e := decodeBody(w, r, maxSmallBody, &req); e != nil {
		httpx.WriteError(w, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	cur, next, err := wire.VerifyOperatorKeyRotate(&req)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, err.Error()))
		return
	}
	if d := now.Sub(time.Unix(req.TS, 0)); d > renameSkew || d < -renameSkew {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "ts is more than 300 s from the directory's clock").WithField("ts"))
		return
	}
	old, succ := base64.StdEncoding.EncodeToString(cur), base64.StdEncoding.EncodeToString(next)
	if !s.operators.keys.consume(req.Nonce, old, now) {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "the challenge nonce is unknown, used or expired: ask POST /v1/operator/challenge for a fresh one").WithField("nonce"))
		return
	}
	moved, e := s.rotateOperator(r.Context(), old, succ, now)
	if e != nil {
		httpx.WriteError(w, e)
		return
	}
	s.log.Info("operator key rotated", "operator_fingerprint", fingerprintOf(old), "successor_fingerprint", fingerprintOf(succ), "nodes", moved)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "rotated", "operator_fingerprint": fingerprintOf(old),
		"successor_fingerprint": fingerprintOf(succ), "nodes_moved": moved, "overlap_until": now.Add(rotationOverlap).Unix()})
}

// rotateOperator moves every node bound to old onto succ, with the display
// name, in one transaction, then marks old rotated. It holds the
// operator registration lock so no registration binds old meanwhile.
func (s *Server) rotateOperator(ctx context.Context, old, succ string, now time.Time) (int, *wire.Error) {
	b := s.operators
	b.regMu.Lock()
	defer b.regMu.Unlock()
	if b.keys.rotated(old) || b.keys.rotated(succ) {
		return 0, wire.NewError(wire.CodeConflict, "this key was already rotated")
	}
	var linked []*entry
	inUse := false
	s.store.idx.forAll(func(e *entry) {
		switch e.rec.OperatorPubKey {
		case old:
			linked = append(linked, e)
		case succ:
			inUse = true
		}
	})
	if inUse {
		return 0, wire.NewError(wire.CodeConflict, "the successor key already has nodes: rotate to a fresh key")
	}
	overlapUntil := now.Add(rotationOverlap).Unix()
	moved := make([]*NodeRecord, len(linked))
	for i, e := range linked {
		rec := *e.rec
		// The old delegation is honoured for the overlap window only.
		rec.OperatorPubKey, rec.OperatorNotAfter = succ, min(rec.OperatorNotAfter, overlapUntil)
		moved[i] = &rec
	}
	if err := s.commitRotation(ctx, old, succ, moved, now, overlapUntil); err != nil {
		s.log.Error("rotating operator key", "error", err)
		return 0, wire.NewError(wire.CodeUnavailable, "storing the rotation failed")
	}
	for i, e := range linked {
		s.store.idx.put(moved[i], nil, e.cred, false) // nil: the live state, read under the index lock
	}
	b.keys.mu.Lock()
	b.keys.rotations[old] = rotation{successor: succ, overlapUntil: overlapUntil}
	b.keys.mu.Unlock()
	b.mu.Lock()
	if n, ok := b.names[old]; ok {
		b.names[succ] = n
	}
	b.mu.Unlock()
	b.gen.Add(1)
	return len(linked), nil
}

// commitRotation writes the rotation, the moved records and the display
// name in one transaction.
func (s *Server) commitRotation(ctx context.Context, old, succ string, moved []*NodeRecord, now time.Time, overlapUntil int64) error {
	tx, err := s.store.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, `INSERT INTO operator_rotations (old_pubkey, new_pubkey, rotated_at, overlap_until) VALUES (?, ?, ?, ?)`,
		old, succ, now.Unix(), overlapUntil); err != nil {
		return err
	}
	for _, rec := range moved {
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE nodes SET record = ? WHERE node_id = ?`, raw, rec.NodeID); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO operators (operator_pubkey, display_name, renamed_ts)
		SELECT ?, display_name, renamed_ts FROM operators WHERE operator_pubkey = ?`, succ, old); err != nil {
		return err
	}
	return tx.Commit()
}

// errRotatedOperator: a delegation by a key rotated out past its overlap.
var errRotatedOperator = errors.New("operator_delegation is signed by a rotated operator key past its overlap window")
