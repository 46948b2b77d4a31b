package directory

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// handleMembership is POST /v1/membership (a meshnode addition,
// docs/spec-decisions.md "Mesh authorisation"): a registered node (Bearer
// node token) obtains a membership credential binding its node_id, the
// libp2p peer ID of its registered key and its registered intents, signed
// by this directory's key for MembershipTTL. Mesh peers verify it offline,
// so the mesh keeps working while this directory is unreachable.
func (s *Server) handleMembership(w http.ResponseWriter, r *http.Request) {
	caller, now, ok := s.nodeRequest(w, r, s.memberLimit, "membership")
	if !ok {
		return
	}
	rec := caller.rec
	pub, err := base64.StdEncoding.DecodeString(rec.PublicKey)
	// A rotated or recovered node (continuity.go) is on the mesh under its
	// key's node_id: peers derive node_id from the authenticated key.
	if err != nil || len(pub) != ed25519.PublicKeySize || (wire.NodeIDFromKey(pub) != rec.NodeID && !s.keyBound(r.Context(), rec.NodeID, pub)) {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError,
			"membership needs a registration whose public_key is the Ed25519 key the node_id derives from; re-register with it").WithField("public_key"))
		return
	}
	peerID, err := token.PeerIDFromKey(pub)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "public_key is not an Ed25519 key").WithField("public_key"))
		return
	}
	m := token.Membership{V: 1, Iss: s.baseURL(r), Sub: wire.NodeIDFromKey(pub), PeerID: peerID, Intents: []string{},
		IAT: now.Unix(), Exp: now.Add(s.cfg.MembershipTTL).Unix()}
	for _, c := range rec.Capabilities {
		m.Intents = append(m.Intents, c.Intent)
	}
	cred, err := token.SignMembership(s.signKey, m)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not issue a credential"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"credential": cred, "expires_at": m.Exp,
		"node_id": m.Sub, "peer_id": m.PeerID, "intents": m.Intents})
}

// maxRevoked bounds the revocation list; past it the oldest entries go
// (their credentials expire on their own).
const maxRevoked = 10_000

// revocations remembers explicit deregistrations for one membership
// lifetime: a credential issued before its node deregistered is refused by
// mesh peers that read the list (GET /v1/membership/revoked), instead of
// living on until it expires. Kept in memory: after a directory restart
// expiry alone bounds the credentials of nodes deregistered before it.
type revocations struct {
	mu sync.Mutex
	m  map[string]revocation
}

type revocation struct{ at, until time.Time }

func (r *revocations) add(nodeID string, at time.Time, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]revocation{}
	}
	r.pruneLocked(at)
	if len(r.m) >= maxRevoked {
		oldest, first := "", time.Time{}
		for id, v := range r.m {
			if first.IsZero() || v.at.Before(first) {
				oldest, first = id, v.at
			}
		}
		delete(r.m, oldest)
	}
	r.m[nodeID] = revocation{at: at, until: at.Add(ttl + token.MembershipGrace)}
}

func (r *revocations) pruneLocked(now time.Time) {
	for id, v := range r.m {
		if !now.Before(v.until) {
			delete(r.m, id)
		}
	}
}

// list returns node_id → revoked_at (Unix seconds) of live entries.
func (r *revocations) list(now time.Time) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked(now)
	out := make(map[string]int64, len(r.m))
	for id, v := range r.m {
		out[id] = v.at.Unix()
	}
	return out
}

// handleRevoked is GET /v1/membership/revoked: node_ids deregistered within
// the last membership lifetime, with when. A mesh peer refuses a
// credential of such a node issued before that instant; one issued after
// (the node registered again) stays good. Public: deregistration is no
// secret, and discover already stops listing the node.
func (s *Server) handleRevoked(w http.ResponseWriter, r *http.Request) {
	if ok, wait := s.revokedLimit.Allow(s.limitKey(r), s.now()); !ok {
		s.metrics.rateLimited.WithLabelValues("membership_revoked").Inc()
		httpx.RateLimited(w, "too many revocation-list requests", wait)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"revoked": s.revoked.list(s.now())})
}
