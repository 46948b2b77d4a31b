package directory

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshnode/meshnode/wire"
)

// Node continuity (docs/spec-decisions.md "identity continuity"): a node
// keeps its node_id and history across a deregistration, a move to another
// machine, a node-key rotation and the loss of its machine.
//
//   - retired_nodes: an explicit deregistration keeps the node's record,
//     heartbeat state and token hash for retiredRetention. A later REGISTER
//     of that node_id proving ownership — the retired current_node_token, or
//     a node_key_binding signed by the key or operator on record — gets its
//     counters, reputation and first-registration time back. Without proof
//     it registers as a new node and the retired row stays (its own later
//     retirement does not replace it).
//   - node_key_bindings: every accepted wire.NodeKeyBinding (rotation by the
//     old node key, recovery by the operator key), recorded with public
//     fingerprints only. A binding is accepted once: its issued_at must be
//     newer than the last recorded for node_id (replay), and it must be
//     unexpired and signed by a key on record for node_id (forgery).
const continuitySchema = `
CREATE TABLE IF NOT EXISTS retired_nodes (
	node_id    TEXT PRIMARY KEY,
	record     BLOB NOT NULL,
	state      BLOB NOT NULL,
	token_hash BLOB,
	retired_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retired_nodes_age ON retired_nodes(retired_at);
CREATE TABLE IF NOT EXISTS node_key_bindings (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id       TEXT NOT NULL,
	issued_at     INTEGER NOT NULL,
	signer        TEXT NOT NULL,
	signer_fp     TEXT NOT NULL,
	old_key_fp    TEXT NOT NULL,
	new_key_fp    TEXT NOT NULL,
	recorded_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS node_key_bindings_node ON node_key_bindings(node_id, issued_at);
`

// retiredRetention is how long a deregistered node's history waits for it
// to come back: long enough for a machine move or a holiday, short enough
// that the table stays small. The spec sets no number.
const retiredRetention = 30 * 24 * time.Hour

// retireTx copies a node's row into retired_nodes inside the
// deregistration's transaction, with its in-memory heartbeat state (the
// row's may be up to one write-behind flush old), and drops rows past
// retention.
func (st *store) retireTx(ctx context.Context, tx *sql.Tx, nodeID string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM retired_nodes WHERE retired_at < ?`, at.Add(-retiredRetention).Unix()); err != nil {
		return fmt.Errorf("pruning retired nodes: %w", err)
	}
	var live []byte
	if e := st.idx.get(nodeID); e != nil {
		live, _ = json.Marshal(e.state.Load())
	}
	// OR IGNORE: a retired row still here was never reclaimed with proof,
	// so the node now deregistering did not own it (it registered the
	// node_id without the retired token); its retirement must not erase
	// the rightful owner's history.
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO retired_nodes (node_id, record, state, token_hash, retired_at)
		SELECT node_id, record, COALESCE(?, state), token_hash, ? FROM nodes WHERE node_id = ?`, live, at.Unix(), nodeID)
	if err != nil {
		return fmt.Errorf("retiring node: %w", err)
	}
	return nil
}

// retired is a deregistered node's kept history.
type retired struct {
	rec   NodeRecord
	state nodeState
	hash  []byte
}

// retiredNode reads node_id's retired row, if one is within retention.
func (st *store) retiredNode(ctx context.Context, nodeID string, now time.Time) (*retired, error) {
	var recRaw, stRaw, hash []byte
	err := st.db.QueryRowContext(ctx, `SELECT record, state, token_hash FROM retired_nodes WHERE node_id = ? AND retired_at >= ?`,
		nodeID, now.Add(-retiredRetention).Unix()).Scan(&recRaw, &stRaw, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading retired node: %w", err)
	}
	r := &retired{hash: hash}
	if json.Unmarshal(recRaw, &r.rec) != nil || json.Unmarshal(stRaw, &r.state) != nil {
		return nil, errors.New("decoding retired node")
	}
	return r, nil
}

// lastBindingAt is the issued_at of node_id's latest recorded binding (0
// when none).
func (st *store) lastBindingAt(ctx context.Context, nodeID string) (int64, error) {
	var at sql.NullInt64
	err := st.db.QueryRowContext(ctx, `SELECT MAX(issued_at) FROM node_key_bindings WHERE node_id = ?`, nodeID).Scan(&at)
	return at.Int64, err
}

// recordBinding stores an accepted binding (fingerprints only).
func (st *store) recordBinding(ctx context.Context, b *wire.NodeKeyBinding, oldKey string, now time.Time) error {
	fp := func(s string) string {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return ""
		}
		return wire.OperatorFingerprint(raw)
	}
	_, err := st.db.ExecContext(ctx, `INSERT INTO node_key_bindings (node_id, issued_at, signer, signer_fp, old_key_fp, new_key_fp, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, b.NodeID, b.IssuedAt, b.Signer, fp(b.SignerPub), fp(oldKey), fp(b.NodePub), now.Unix())
	return err
}

// KeyBinding is one recorded node-key rotation or recovery, as the
// directory keeps it (public fingerprints only).
type KeyBinding struct {
	IssuedAt   int64  `json:"issued_at"`
	Signer     string `json:"signer"`
	SignerFP   string `json:"signer_fingerprint"`
	OldKeyFP   string `json:"old_key_fingerprint"`
	NewKeyFP   string `json:"new_key_fingerprint"`
	RecordedAt int64  `json:"recorded_at"`
}

// KeyBindings lists node_id's recorded rotations and recoveries, oldest
// first (operators' and tests' view of the record).
func (s *Server) KeyBindings(ctx context.Context, nodeID string) ([]KeyBinding, error) {
	rows, err := s.store.db.QueryContext(ctx, `SELECT issued_at, signer, signer_fp, old_key_fp, new_key_fp, recorded_at
		FROM node_key_bindings WHERE node_id = ? ORDER BY issued_at`, nodeID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []KeyBinding
	for rows.Next() {
		var k KeyBinding
		if err := rows.Scan(&k.IssuedAt, &k.Signer, &k.SignerFP, &k.OldKeyFP, &k.NewKeyFP, &k.RecordedAt); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// bindingOwner checks a node_key_binding against what the directory has on
// record for node_id (rec: the live or retired record) and the REGISTER it
// came in: it must bind the registering public_key, be unexpired, be signed
// by the node key on record (signer "node") or the operator key the node
// is bound to (signer "operator"), and be newer than the last binding
// recorded for node_id. nil means ownership is proven.
func (s *Server) bindingOwner(ctx context.Context, rec *NodeRecord, b *registerBody, now time.Time) *wire.Error {
	kb := b.NodeKeyBinding
	nodePub, signerPub, err := wire.VerifyNodeKeyBinding(kb, now.Unix())
	if err != nil {
		return wire.NewError(wire.CodeE050, err.Error()).WithField("node_key_binding")
	}
	if !strings.EqualFold(kb.NodeID, rec.NodeID) || base64.StdEncoding.EncodeToString(nodePub) != b.PublicKey {
		return wire.NewError(wire.CodeE050, "node_key_binding binds another node_id or public_key than this REGISTER").WithField("node_key_binding")
	}
	var onRecord string
	switch kb.Signer {
	case wire.BindingSignerNode:
		onRecord = rec.PublicKey
	case wire.BindingSignerOperator:
		// A record from before an operator rotation names the old key.
		onRecord, _ = s.operators.keys.current(rec.OperatorPubKey, math.MaxInt64, now)
	}
	if onRecord == "" || onRecord != base64.StdEncoding.EncodeToString(signerPub) {
		return wire.NewError(wire.CodeE050, "node_key_binding is not signed by the "+kb.Signer+" key on record for this node_id").WithField("node_key_binding")
	}
	last, err := s.store.lastBindingAt(ctx, rec.NodeID)
	if err != nil {
		return wire.NewError(wire.CodeInternal, "could not read the node's key history")
	}
	if kb.IssuedAt <= last {
		return wire.NewError(wire.CodeE050, "node_key_binding was already used (issued_at is not newer than the last recorded binding)").WithField("node_key_binding")
	}
	return nil
}

// retiredOwner reports whether a REGISTER of a node_id with no live record
// proves ownership of its retired history: the retired node token, or a
// node_key_binding authorised by the retired record.
func (s *Server) retiredOwner(ctx context.Context, b *registerBody, now time.Time) (*retired, bool) {
	r, err := s.store.retiredNode(ctx, b.NodeID, now)
	if err != nil {
		s.log.Warn("reading retired node", "node", b.NodeID, "error", err)
		return nil, false
	}
	if r == nil {
		return nil, false
	}
	if b.CurrentNodeToken != "" && len(b.CurrentNodeToken) <= maxTokenLen && len(r.hash) > 0 &&
		bcrypt.CompareHashAndPassword(r.hash, []byte(b.CurrentNodeToken)) == nil {
		return r, true
	}
	if b.NodeKeyBinding != nil && s.bindingOwner(ctx, &r.rec, b, now) == nil {
		return r, true
	}
	return r, false
}

// carryHistory gives a returning node (retired, or under a new key) its
// history: first registration, outcome counters, reputation and the
// operator it was bound to.
func carryHistory(rec *NodeRecord, st *nodeState, prev *NodeRecord, prevSt *nodeState) {
	rec.RegisteredAt = prev.RegisteredAt
	st.CompletedTasks, st.FailedTasks, st.Reputation = prevSt.CompletedTasks, prevSt.FailedTasks, prevSt.Reputation
	st.LastBatchID, st.RepHourlyGain, st.RepWindowStart = prevSt.LastBatchID, prevSt.RepHourlyGain, prevSt.RepWindowStart
	if rec.OperatorPubKey == "" {
		rec.OperatorPubKey, rec.OperatorNotAfter = prev.OperatorPubKey, prev.OperatorNotAfter
	}
}

// ownership is what a REGISTER proved about its node_id.
type ownership struct {
	// prior is the retired history the node gets back (nil: none).
	prior *retired
	// bound: a node_key_binding proved ownership or came with it; it is
	// recorded once the registration is stored.
	bound bool
}

// proveOwnership applies checkOwnership (§5, E049/E050) with the
// continuity paths in front of it: a live node_id whose REGISTER lacks
// its current token may prove ownership with a node_key_binding, and a
// retired node_id gets its history back when it proves ownership.
func (s *Server) proveOwnership(ctx context.Context, old *entry, b *registerBody, key string, now time.Time) (ownership, *wire.Error) {
	if old == nil {
		r, ok := s.retiredOwner(ctx, b, now)
		if r != nil && !ok && b.CurrentNodeToken != "" {
			s.badToken(key, "register", b.NodeID)
		}
		if !ok {
			// A new node_id: a rotation binding signed by the key the
			// node_id derives from needs no record to check against.
			return ownership{bound: s.selfCertified(ctx, b, now)}, nil
		}
		return ownership{prior: r, bound: b.NodeKeyBinding != nil && s.bindingOwner(ctx, &r.rec, b, now) == nil}, nil
	}
	if b.NodeKeyBinding == nil {
		return ownership{}, s.checkOwnership(ctx, old, b, key)
	}
	if e := s.tokens.verify(s.store.idx, b.CurrentNodeToken); e != nil && e.rec.NodeID == old.rec.NodeID {
		// The token proves ownership; a binding not yet recorded (a
		// rotation) is recorded, one already recorded is ignored.
		return ownership{bound: s.bindingOwner(ctx, old.rec, b, now) == nil}, nil
	}
	if e := s.bindingOwner(ctx, old.rec, b, now); e != nil {
		if b.CurrentNodeToken != "" {
			s.badToken(key, "register", old.rec.NodeID)
		}
		return ownership{}, e
	}
	return ownership{bound: true}, nil
}

// afterRegister records what proveOwnership found once the registration
// is stored: the binding, and the retired row is consumed.
func (s *Server) afterRegister(ctx context.Context, o ownership, b *registerBody, oldKey string, now time.Time) {
	if o.bound {
		if err := s.store.recordBinding(ctx, b.NodeKeyBinding, oldKey, now); err != nil {
			s.log.Error("recording node key binding", "node", b.NodeID, "error", err)
		} else {
			s.log.Info("node key binding recorded", "node", b.NodeID, "signer", b.NodeKeyBinding.Signer)
		}
	}
	if o.prior != nil {
		if _, err := s.store.db.ExecContext(ctx, `DELETE FROM retired_nodes WHERE node_id = ?`, b.NodeID); err != nil {
			s.log.Warn("clearing retired node", "node", b.NodeID, "error", err)
		}
	}
}

// keyBound reports whether node_id's latest recorded binding bound it to
// pub: such a node gets a mesh membership credential for the key's own
// node_id (membership.go).
func (s *Server) keyBound(ctx context.Context, nodeID string, pub ed25519.PublicKey) bool {
	var fp string
	err := s.store.db.QueryRowContext(ctx, `SELECT new_key_fp FROM node_key_bindings WHERE node_id = ? ORDER BY issued_at DESC LIMIT 1`,
		nodeID).Scan(&fp)
	return err == nil && fp == wire.OperatorFingerprint(pub)
}

// revokeMembership puts a deregistered node's mesh names on the revocation
// list: its node_id and, for a rotated or recovered node, its key's.
func (s *Server) revokeMembership(rec *NodeRecord, at time.Time) {
	s.revoked.add(rec.NodeID, at, s.cfg.MembershipTTL)
	if raw, err := base64.StdEncoding.DecodeString(rec.PublicKey); err == nil && len(raw) == ed25519.PublicKeySize {
		if derived := wire.NodeIDFromKey(raw); derived != rec.NodeID {
			s.revoked.add(derived, at, s.cfg.MembershipTTL)
		}
	}
}

// selfCertified reports whether a REGISTER of an unknown node_id carries a
// binding by the node key that node_id derives from (a node rotated before
// it ever registered here): recorded like any other, so the node gets its
// mesh credential.
func (s *Server) selfCertified(ctx context.Context, b *registerBody, now time.Time) bool {
	kb := b.NodeKeyBinding
	if kb == nil || kb.Signer != wire.BindingSignerNode {
		return false
	}
	_, signer, err := wire.VerifyNodeKeyBinding(kb, now.Unix())
	if err != nil || wire.NodeIDFromKey(signer) != strings.ToLower(b.NodeID) {
		return false
	}
	rec := &NodeRecord{NodeID: b.NodeID, PublicKey: base64.StdEncoding.EncodeToString(signer)}
	return s.bindingOwner(ctx, rec, b, now) == nil
}
