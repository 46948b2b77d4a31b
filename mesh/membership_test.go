package mesh

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
	"github.com/meshnode/meshnode/wire/token"
)

// startEngineNode runs a mesh node serving with the real task engine (echo
// backend, no open mode, no allowlist): what `meshnode up` serves with.
func startEngineNode(t *testing.T) *testNode {
	t.Helper()
	return startEngineNodeClock(t, nil)
}

// startEngineNodeClock is startEngineNode with the mesh reading clk (nil:
// the wall clock).
func startEngineNodeClock(t *testing.T, clk *testClock) *testNode {
	t.Helper()
	h := newTestHost(t, false)
	own, _ := NodeIDOf(h.ID())
	r, err := backend.NewRouter(backend.Route{Intent: testIntent, Mode: backend.ModeChat, Backend: backend.NewEcho(), Models: []string{"echo-1"}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := node.New(node.Config{NodeID: own, MaxConcurrent: 8}, r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(h, testConfig("server", true), eng)
	if err != nil {
		t.Fatal(err)
	}
	if clk != nil {
		m.now = clk.now
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{h: h, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Serve(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

func credentialFor(t *testing.T, key ed25519.PrivateKey, h host.Host, iat time.Time, life time.Duration) string {
	t.Helper()
	nodeID, _ := NodeIDOf(h.ID())
	c, err := token.SignMembership(key, token.Membership{V: 1, Iss: "http://dir.test", Sub: nodeID, PeerID: h.ID().String(),
		Intents: []string{}, IAT: iat.Unix(), Exp: iat.Add(life).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func callPinned(t *testing.T, from *testNode, to peer.ID) *wire.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, _, err := from.m.Call(ctx, testCall(), CallOptions{Peer: to, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestMembership_MeshCallWithoutDirectory: a caller holding a membership
// credential from a directory the server trusts is served with no consumer
// token and no directory on the path; the verdict is cached per peer. An
// expired credential gets unauthorized naming the expiry, a forged one
// (another key), a stolen one (another peer's) and none at all get
// unauthorized; every verdict is counted in meshnode_mesh_events_total.
func TestMembership_MeshCallWithoutDirectory(t *testing.T) {
	_, dirKey, _ := ed25519.GenerateKey(nil)
	_, rogue, _ := ed25519.GenerateKey(nil)
	server := startEngineNode(t)
	server.m.SetDirectoryKeys(dirKey.Public().(ed25519.PublicKey))
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	now := time.Now()

	client.m.SetMembership(credentialFor(t, dirKey, client.h, now, time.Hour))
	for range 3 {
		if resp := callPinned(t, client, server.h.ID()); resp.Status != wire.StatusSuccess {
			t.Fatalf("member refused: %+v", resp.Error)
		}
	}
	if n := server.m.Stats()["membership_verified"]; n != 1 {
		t.Fatalf("verified %d times, want once (cached per peer): %v", n, server.m.Stats())
	}

	refusals := []struct {
		name, cred, event, msg string
	}{
		{"expired", credentialFor(t, dirKey, client.h, now.Add(-2*time.Hour), time.Hour), "membership_expired", "expired at " + now.Add(-time.Hour).UTC().Format(time.RFC3339)[:13]},
		{"forged", credentialFor(t, rogue, client.h, now, time.Hour), "membership_forged", "signature invalid"},
		{"stolen", credentialFor(t, dirKey, server.h, now, time.Hour), "membership_forged", "another peer"},
		{"none", "", "", "missing or invalid credentials"},
	}
	for _, r := range refusals {
		client.m.SetMembership(r.cred)
		resp := callPinned(t, client, server.h.ID())
		if resp.Status == wire.StatusSuccess || resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || !strings.Contains(resp.Error.Message, r.msg) {
			t.Errorf("%s: %+v, want unauthorized containing %q", r.name, resp.Error, r.msg)
		}
		if strings.Contains(resp.Error.Message, r.cred[min(len(r.cred), 10):]) && r.cred != "" {
			t.Errorf("%s: refusal echoes the credential", r.name)
		}
		if r.event != "" && server.m.Stats()[r.event] == 0 {
			t.Errorf("%s: %s not counted: %v", r.name, r.event, server.m.Stats())
		}
	}
}

// TestMembership_Revoked: a node_id on the revoked list is refused before
// its credential expires, even after a cached success; a credential issued
// after the revocation (the node registered again) is accepted.
func TestMembership_Revoked(t *testing.T) {
	_, dirKey, _ := ed25519.GenerateKey(nil)
	server := startEngineNode(t)
	server.m.SetDirectoryKeys(dirKey.Public().(ed25519.PublicKey))
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	now := time.Now()
	client.m.SetMembership(credentialFor(t, dirKey, client.h, now.Add(-time.Minute), time.Hour))
	if resp := callPinned(t, client, server.h.ID()); resp.Status != wire.StatusSuccess {
		t.Fatalf("member refused: %+v", resp.Error)
	}
	id, _ := NodeIDOf(client.h.ID())
	server.m.SetRevoked(map[string]int64{id: now.Unix()})
	resp := callPinned(t, client, server.h.ID())
	if resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || !strings.Contains(resp.Error.Message, "revoked") {
		t.Fatalf("revoked member: %+v", resp.Error)
	}
	if server.m.Stats()["membership_revoked"] != 1 {
		t.Fatalf("stats %v", server.m.Stats())
	}
	client.m.SetMembership(credentialFor(t, dirKey, client.h, now.Add(time.Second), time.Hour))
	if resp := callPinned(t, client, server.h.ID()); resp.Status != wire.StatusSuccess {
		t.Fatalf("re-registered member refused: %+v", resp.Error)
	}
}

// TestMembership_PeerIDFromKeyIsLibp2ps: the directory's peer ID
// derivation (wire/token, no libp2p) is libp2p's.
func TestMembership_PeerIDFromKeyIsLibp2ps(t *testing.T) {
	for range 5 {
		h := randomPeer(t)
		pk, err := h.ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := pk.Raw()
		got, err := token.PeerIDFromKey(raw)
		if err != nil || got != h.String() {
			t.Fatalf("PeerIDFromKey %q, libp2p %q (%v)", got, h, err)
		}
	}
}
