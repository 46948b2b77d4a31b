package mesh

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// Mesh authorisation by membership credential (docs/spec-decisions.md,
// "Mesh authorisation: membership credentials"). A calling node sends the
// credential its directory issued it (wire/token Membership) in the HEADERS
// frame of its task streams; the serving node verifies it offline against
// the directory keys it holds, bound to the peer the secure channel
// authenticated, and remembers the verdict per peer until the credential
// expires, so a connection's later streams cost a hash and a map lookup.

// maxMembers bounds the per-peer verdict cache.
const maxMembers = 4096

// memberEntry is one verified credential: its digest and expiry.
type memberEntry struct {
	sum    [sha256.Size]byte
	nodeID string
	iat    int64
	until  time.Time // exp + grace
}

// membership holds this node's own credential (sent) and what it needs to
// verify others' (directory keys, verdict cache, revoked node_ids).
type membership struct {
	hdrMu   sync.Mutex // serialises rebuildHeaders
	mu      sync.RWMutex
	keys    []ed25519.PublicKey
	own     string           // LOG-FORBIDDEN
	headers []byte           // own credential as an encoded HEADERS payload
	revoked map[string]int64 // node_id → revoked_at (Unix seconds)
	cache   map[peer.ID]memberEntry
}

// SetDirectoryKeys sets the directory keys membership credentials must be
// signed by (the keys consumer tokens are checked against). Clears cached
// verdicts, so a key withdrawn is a key no longer trusted.
func (m *Mesh) SetDirectoryKeys(keys ...ed25519.PublicKey) {
	ms := &m.members
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.keys = append([]ed25519.PublicKey(nil), keys...)
	ms.cache = nil
}

// SetMembership sets this node's own credential, sent on every outbound
// task stream ("" sends none).
func (m *Mesh) SetMembership(cred string) {
	ms := &m.members
	ms.mu.Lock()
	ms.own = cred
	ms.mu.Unlock()
	m.rebuildHeaders()
}

// rebuildHeaders encodes the HEADERS payload every outbound task stream
// without a consumer token sends: the membership credential and the
// operator delegation, whichever this node holds.
func (m *Mesh) rebuildHeaders() {
	ms := &m.members
	ms.hdrMu.Lock()
	defer ms.hdrMu.Unlock()
	op := m.ownOperator()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.headers = nil
	if ms.own != "" || op != nil {
		ms.headers, _ = cborEnc.Marshal(headersMsg{Membership: ms.own, Operator: op})
	}
}

// SetRevoked replaces the revocation list: node_id → when the node
// deregistered (Unix seconds). A credential of such a node issued before
// that instant is refused before it expires; one issued after (the node
// registered again) is not.
func (m *Mesh) SetRevoked(revoked map[string]int64) {
	r := make(map[string]int64, len(revoked))
	for id, at := range revoked {
		r[id] = at
	}
	ms := &m.members
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.revoked = r
}

// ownHeaders returns this node's credential and the encoded HEADERS of
// its credential and operator delegation.
func (m *Mesh) ownHeaders() (string, []byte) {
	ms := &m.members
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.own, ms.headers
}

// checkMember verifies the credential p presented. member reports a valid
// one; refusal, when not nil, says why a presented one is refused (the
// engine answers with it when no other credential authorises the call).
// Each verdict is counted in meshnode_mesh_events_total.
func (m *Mesh) checkMember(p peer.ID, cred string) (member bool, refusal *wire.Error) {
	if cred == "" {
		return false, nil
	}
	now := m.now()
	sum := sha256.Sum256([]byte(cred))
	ms := &m.members
	ms.mu.RLock()
	e, hit := ms.cache[p]
	keys := ms.keys
	at, revoked := ms.revoked[e.nodeID]
	revoked = revoked && e.iat < at
	ms.mu.RUnlock()
	if hit && e.sum == sum && now.Before(e.until) && !revoked {
		return true, nil
	}
	nodeID, err := NodeIDOf(p)
	if err != nil {
		m.stats.count("membership_forged")
		return false, wire.NewError(wire.CodeUnauthorized, "membership credential refused: the caller's key has no node_id")
	}
	cl, err := token.VerifyMembership(keys, cred, token.MembershipCheck{PeerID: p.String(), NodeID: nodeID}, now)
	switch {
	case errors.Is(err, token.ErrNoKey):
		m.stats.count("membership_unverifiable")
		return false, wire.NewError(wire.CodeUnauthorized, "membership credential cannot be checked: this node holds no directory key yet")
	case errors.Is(err, token.ErrExpired) && cl != nil:
		m.stats.count("membership_expired")
		return false, wire.Errorf(wire.CodeUnauthorized,
			"membership credential expired at %s: the calling node must renew it from its directory",
			time.Unix(cl.Exp, 0).UTC().Format(time.RFC3339))
	case err != nil:
		m.stats.count("membership_forged")
		return false, wire.NewError(wire.CodeUnauthorized, fmt.Sprintf("membership credential refused: %v", err))
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if at, ok := ms.revoked[nodeID]; ok && cl.IAT < at {
		m.stats.count("membership_revoked")
		return false, wire.NewError(wire.CodeUnauthorized, "membership credential revoked: the calling node was deregistered")
	}
	m.stats.count("membership_verified")
	if ms.cache == nil || len(ms.cache) >= maxMembers {
		ms.cache = make(map[peer.ID]memberEntry)
	}
	ms.cache[p] = memberEntry{sum: sum, nodeID: nodeID, iat: cl.IAT, until: time.Unix(cl.Exp, 0).Add(token.MembershipGrace)}
	return true, nil
}
