package directory

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// TestMembership_IssuedToTheRegisteredKey: POST /v1/membership gives a
// registered node a credential bound to the node_id and peer ID of the key
// it registered, with its intents and the configured lifetime; it verifies
// offline with the directory key; a registration whose node_id does not
// derive from its public_key, or no node token, gets none.
func TestMembership_IssuedToTheRegisteredKey(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.MembershipTTL = time.Hour })
	pub, _, _ := ed25519.GenerateKey(nil)
	body := h.regBody("node1", chat)
	body["node_id"] = wire.NodeIDFromKey(pub)
	body["public_key"] = base64.StdEncoding.EncodeToString(pub)
	id, tok := h.register(body)
	r := h.do(http.MethodPost, "/api/v1/membership", nil, bearerHdr(tok))
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	peerID, _ := token.PeerIDFromKey(pub)
	got, err := token.VerifyMembership([]ed25519.PublicKey{h.s.PublicKey()}, m["credential"].(string),
		token.MembershipCheck{PeerID: peerID, NodeID: id}, h.clock.Now())
	if err != nil || got.Exp-got.IAT != 3600 || len(got.Intents) != 1 || got.Intents[0] != chat || m["peer_id"] != peerID {
		t.Fatalf("credential: %v %+v %v", err, got, m)
	}
	if r := h.do(http.MethodPost, "/v1/membership", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.status)
	}
	// A node_id that is not the registered key's: no credential.
	_, tok2 := h.register(h.regBody("node2", chat))
	if r := h.do(http.MethodPost, "/v1/membership", nil, bearerHdr(tok2)); r.status != http.StatusUnprocessableEntity || r.errCode(t) != string(wire.CodeValidationError) {
		t.Errorf("keyless registration: %d %s", r.status, r.body)
	}
}

func TestMembership_TTLBounds(t *testing.T) {
	for _, ttl := range []time.Duration{time.Second, 25 * time.Hour} {
		cfg := Config{StateDir: t.TempDir(), MembershipTTL: ttl}
		cfg.applyDefaults()
		if err := cfg.validate(); err == nil {
			t.Errorf("MembershipTTL %v accepted", ttl)
		}
	}
}

// TestMembership_RevokedList: an explicit deregistration is listed at GET
// /v1/membership/revoked with its time for one membership lifetime, then
// dropped.
func TestMembership_RevokedList(t *testing.T) {
	h := startHarness(t, func(c *Config) { c.MembershipTTL = time.Minute })
	id, tok := h.register(h.regBody("node1", chat))
	if r := h.do(http.MethodPost, "/v1/deregister", map[string]any{"node_id": id}, bearerHdr(tok)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	m := h.do(http.MethodGet, "/api/v1/membership/revoked", nil, nil).json(t)
	rev, _ := m["revoked"].(map[string]any)
	if at, ok := rev[id].(float64); !ok || int64(at) != h.clock.Now().Unix() {
		t.Fatalf("revoked list %v", m)
	}
	h.clock.Advance(time.Minute + token.MembershipGrace)
	m = h.do(http.MethodGet, "/v1/membership/revoked", nil, nil).json(t)
	if rev, _ := m["revoked"].(map[string]any); len(rev) != 0 {
		t.Fatalf("entry outlived the membership lifetime: %v", m)
	}
}
