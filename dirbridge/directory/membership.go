package directory

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"

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
	caller := s.tokens.verify(s.store.idx, bearer(r))
	if caller == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "missing or invalid node token"))
		return
	}
	now := s.now()
	if ok, wait := s.memberLimit.Allow(caller.rec.NodeID, now); !ok {
		s.metrics.rateLimited.WithLabelValues("membership").Inc()
		httpx.RateLimited(w, "too many membership requests", wait)
		return
	}
	rec := caller.rec
	pub, err := base64.StdEncoding.DecodeString(rec.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize || wire.NodeIDFromKey(pub) != rec.NodeID {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError,
			"membership needs a registration whose public_key is the Ed25519 key the node_id derives from; re-register with it").WithField("public_key"))
		return
	}
	peerID, err := token.PeerIDFromKey(pub)
	if err != nil {
		httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "public_key is not an Ed25519 key").WithField("public_key"))
		return
	}
	m := token.Membership{V: 1, Iss: s.baseURL(r), Sub: rec.NodeID, PeerID: peerID, Intents: []string{},
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
