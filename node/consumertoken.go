package node

import (
	"bytes"
	"crypto/ed25519"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire/token"
)

// Consumer tokens (iicp-dir.md §3.12, iicp-core.md §3.1 errata v1.5.2) are
// defined once, in wire/token: format, domain string, grace, the maximum
// lifetime and the jti replay rule. This file holds what the engine adds:
// the directory keys it currently trusts and the jtis it has seen.

// maxLiveJTIs bounds the replay guard: at the directory's 60 tokens/min per
// caller and a 300 s lifetime, room for a few hundred busy callers.
const maxLiveJTIs = 1 << 16

// ConsumerTokenVerifier checks consumer tokens against the directory keys it
// currently holds and consumes each token's jti. Keys are replaced
// atomically (the directory may rotate its key; the node refetches
// GET /api/v1/directory-key).
type ConsumerTokenVerifier struct {
	keys   atomic.Pointer[[]ed25519.PublicKey]
	replay *token.Replay
}

// NewConsumerTokenVerifier returns a verifier holding keys (may be none).
func NewConsumerTokenVerifier(keys ...ed25519.PublicKey) *ConsumerTokenVerifier {
	v := &ConsumerTokenVerifier{replay: token.NewReplay(maxLiveJTIs)}
	v.SetKeys(keys...)
	return v
}

// SetKeys replaces the trusted directory keys. Keys of the wrong size are dropped.
func (v *ConsumerTokenVerifier) SetKeys(keys ...ed25519.PublicKey) {
	ks := make([]ed25519.PublicKey, 0, len(keys))
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize {
			ks = append(ks, bytes.Clone(k))
		}
	}
	v.keys.Store(&ks)
}

// HasKeys reports whether any directory key is configured. Without one the
// node MUST fall back to node_token validation (iicp-dir.md §3.12).
func (v *ConsumerTokenVerifier) HasKeys() bool {
	ks := v.keys.Load()
	return ks != nil && len(*ks) > 0
}

// Verify checks tok for a CALL with intent to this node (nodeID) from a
// caller whose node_id the transport authenticated (callerNodeID; "" on
// HTTP), and consumes its jti, so the same token authorizes one task.
// Errors are wire/token's, safe to log.
func (v *ConsumerTokenVerifier) Verify(tok, nodeID, callerNodeID, intent string, now time.Time) (*token.Consumer, error) {
	var ks []ed25519.PublicKey
	if p := v.keys.Load(); p != nil {
		ks = *p
	}
	c, err := token.VerifyConsumer(ks, tok, token.ConsumerCheck{Audience: nodeID, Intent: intent, Subject: callerNodeID}, now)
	if err != nil {
		return nil, err
	}
	if err := v.replay.Use(c, now); err != nil {
		return nil, err
	}
	return c, nil
}
