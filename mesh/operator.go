package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// Mesh authorisation by operator delegation (docs/spec-decisions.md, "Home
// mesh: operator trust without a directory"). A node its operator delegated
// (wire.OperatorDelegation, `meshnode operator delegate`) sends the
// delegation in the HEADERS frame of its task streams and in its adverts.
// A serving node verifies it offline, bound to the node_id of the peer the
// secure channel authenticated, and accepts the caller only when the
// delegation names the serving node's own operator key. No directory takes
// part: nodes of one operator on one LAN trust each other by that key.

// maxOperatorPeers bounds the per-peer verdict cache.
const maxOperatorPeers = 4096

// delegationMsg is wire.OperatorDelegation on the mesh: integer-keyed CBOR,
// HEADERS key 3 and advert key 13. The fields are carried as signed (the
// signature covers the JSON text of node_id, not_after and operator_pub).
type delegationMsg struct {
	NodeID      string `cbor:"1,keyasint"`
	OperatorPub string `cbor:"2,keyasint"`
	NotAfter    int64  `cbor:"3,keyasint"`
	Sig         string `cbor:"4,keyasint"`
}

func newDelegationMsg(d *wire.OperatorDelegation) *delegationMsg {
	if d == nil {
		return nil
	}
	return &delegationMsg{NodeID: d.NodeID, OperatorPub: d.OperatorPub, NotAfter: d.NotAfter, Sig: d.Sig}
}

func (d *delegationMsg) wire() *wire.OperatorDelegation {
	return &wire.OperatorDelegation{NodeID: d.NodeID, OperatorPub: d.OperatorPub, NotAfter: d.NotAfter, Sig: d.Sig}
}

// tooLong reports a field beyond wire.MaxDelegationField (checked before
// any decoding or hashing).
func (d *delegationMsg) tooLong() bool {
	return len(d.NodeID) > wire.MaxDelegationField || len(d.OperatorPub) > wire.MaxDelegationField ||
		len(d.Sig) > wire.MaxDelegationField
}

// operatorEntry is one verified delegation: its digest and expiry.
type operatorEntry struct {
	sum   [sha256.Size]byte
	until time.Time
}

// operatorTrust holds this node's own delegation (sent) and the verdicts
// on others' (per peer, until their not_after).
type operatorTrust struct {
	mu    sync.RWMutex
	own   *delegationMsg
	key   ed25519.PublicKey // the own delegation's operator key; nil: none
	cache map[peer.ID]operatorEntry
}

// SetOperator sets this node's operator delegation: sent on every task
// stream and in every advert, and its operator key is the one callers must
// prove to be served by delegation. nil clears it. A delegation that does
// not verify for this node now (another node_id, expired, bad signature)
// is refused and the previous one is kept.
func (m *Mesh) SetOperator(d *wire.OperatorDelegation) error {
	if d == nil {
		m.presentOperator(nil, nil)
		return nil
	}
	key, err := wire.VerifyDelegation(d, m.cfg.NodeID, m.now().Unix())
	if err != nil {
		return fmt.Errorf("operator delegation: %w", err)
	}
	m.presentOperator(newDelegationMsg(d), key)
	return nil
}

// presentOperator stores the own delegation (unchecked: tests present
// forged ones through it) and re-advertises.
func (m *Mesh) presentOperator(d *delegationMsg, key ed25519.PublicKey) {
	o := &m.operator
	o.mu.Lock()
	o.own, o.key, o.cache = d, key, nil
	o.mu.Unlock()
	m.rebuildHeaders()
	m.Readvertise()
}

// ownOperator returns this node's delegation (nil: none).
func (m *Mesh) ownOperator() *delegationMsg {
	m.operator.mu.RLock()
	defer m.operator.mu.RUnlock()
	return m.operator.own
}

// OperatorKey is the operator key of this node's delegation ("" when it
// has none), standard base64 as PeerInfo.Operator.
func (m *Mesh) OperatorKey() string {
	m.operator.mu.RLock()
	defer m.operator.mu.RUnlock()
	if m.operator.key == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(m.operator.key)
}

// SameOperator reports whether p's advert proved a delegation by this
// node's operator key: a peer this node may send its tasks to without a
// directory credential.
func (m *Mesh) SameOperator(p PeerInfo) bool {
	own := m.OperatorKey()
	return own != "" && p.Operator == own
}

// delegationSum is the digest a cached verdict is keyed by.
func delegationSum(d *delegationMsg) [sha256.Size]byte {
	return sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%d\n%s", d.NodeID, d.OperatorPub, d.NotAfter, d.Sig))
}

// checkOperator verifies the delegation p presented. same reports a valid
// one by this node's own operator key; refusal, when not nil, says why a
// presented one is refused. Each verdict is counted in
// meshnode_mesh_events_total (operator_verified, operator_expired,
// operator_forged, operator_foreign, operator_unverifiable).
func (m *Mesh) checkOperator(p peer.ID, d *delegationMsg) (same bool, refusal *wire.Error) {
	if d == nil {
		return false, nil
	}
	now := m.now()
	o := &m.operator
	o.mu.RLock()
	own := o.key
	e, hit := o.cache[p]
	o.mu.RUnlock()
	if own == nil {
		m.stats.count("operator_unverifiable")
		return false, wire.NewError(wire.CodeUnauthorized,
			"operator delegation cannot be checked: the serving node has no operator delegation of its own")
	}
	if d.tooLong() {
		m.stats.count("operator_forged")
		return false, wire.NewError(wire.CodeUnauthorized, "operator delegation refused: "+wire.ErrDelegationMalformed.Error())
	}
	sum := delegationSum(d)
	if hit && e.sum == sum && now.Before(e.until) {
		return true, nil
	}
	if refusal := m.verifyOperator(p, d, own, now); refusal != nil {
		return false, refusal
	}
	m.stats.count("operator_verified")
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cache == nil || len(o.cache) >= maxOperatorPeers {
		o.cache = make(map[peer.ID]operatorEntry)
	}
	o.cache[p] = operatorEntry{sum: sum, until: time.Unix(d.NotAfter, 0)}
	return true, nil
}

// verifyOperator checks d for the node_id p's key proves, at now, against
// the serving node's operator key own; nil means accepted.
func (m *Mesh) verifyOperator(p peer.ID, d *delegationMsg, own ed25519.PublicKey, now time.Time) *wire.Error {
	forged := func(why string) *wire.Error {
		m.stats.count("operator_forged")
		return wire.NewError(wire.CodeUnauthorized, "operator delegation refused: "+why)
	}
	nodeID, err := NodeIDOf(p)
	if err != nil {
		return forged("the caller's key has no node_id")
	}
	key, err := wire.VerifyDelegation(d.wire(), nodeID, now.Unix())
	if errors.Is(err, wire.ErrDelegationExpired) {
		// Expired, but was it ever signed? A forgery is not "expired".
		if _, serr := wire.VerifyDelegation(d.wire(), nodeID, math.MinInt64); serr != nil {
			return forged(serr.Error())
		}
		m.stats.count("operator_expired")
		return wire.Errorf(wire.CodeUnauthorized,
			"operator delegation expired at %s: the operator must run meshnode operator delegate for the calling node again",
			time.Unix(d.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	if err != nil {
		return forged(err.Error())
	}
	if !key.Equal(own) {
		m.stats.count("operator_foreign")
		return wire.NewError(wire.CodeUnauthorized,
			"operator delegation refused: the calling node belongs to another operator")
	}
	return nil
}
