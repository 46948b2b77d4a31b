package mesh

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/meshnode/meshnode/wire"
)

// delegationFor is opKey's delegation of h's node_id until notAfter.
func delegationFor(h host.Host, opKey ed25519.PrivateKey, notAfter time.Time) wire.OperatorDelegation {
	nodeID, _ := NodeIDOf(h.ID())
	return wire.SignDelegation(opKey, nodeID, notAfter.Unix())
}

// TestOperator_SameOperatorServedWithoutDirectory: a caller delegated by
// the serving node's own operator key is served with no directory key, no
// membership credential and no consumer token; the verdict is cached per
// peer. Another operator's delegation, a forged one, an expired one, one
// stolen from another node (another node_id) and none at all (a LAN
// stranger) get unauthorized, each counted in meshnode_mesh_events_total.
func TestOperator_SameOperatorServedWithoutDirectory(t *testing.T) {
	_, opA, _ := ed25519.GenerateKey(nil)
	_, opB, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	server := startEngineNode(t)
	sd := delegationFor(server.h, opA, now.Add(time.Hour))
	if err := server.m.SetOperator(&sd); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	cd := delegationFor(client.h, opA, now.Add(time.Hour))
	if err := client.m.SetOperator(&cd); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if resp := callPinned(t, client, server.h.ID()); resp.Status != wire.StatusSuccess {
			t.Fatalf("same-operator caller refused: %+v", resp.Error)
		}
	}
	if n := server.m.Stats()["operator_verified"]; n != 1 {
		t.Fatalf("verified %d times, want once (cached per peer): %v", n, server.m.Stats())
	}

	forged := cd
	forged.Sig = wire.SignDelegation(opB, cd.NodeID, cd.NotAfter).Sig
	refusals := []struct {
		name  string
		d     *wire.OperatorDelegation
		event string
		msg   string
	}{
		{"other operator", ptr(delegationFor(client.h, opB, now.Add(time.Hour))), "operator_foreign", "another operator"},
		{"forged", &forged, "operator_forged", "signature does not verify"},
		{"expired", ptr(delegationFor(client.h, opA, now.Add(-time.Minute))), "operator_expired", "expired at " + now.Add(-time.Minute).UTC().Format(time.RFC3339)[:13]},
		{"stolen", &sd, "operator_forged", "names another node_id"},
		{"stranger", nil, "task_unauthorized", "missing or invalid credentials"},
	}
	for _, r := range refusals {
		client.m.presentOperator(newDelegationMsg(r.d), nil)
		before := server.m.Stats()[r.event]
		resp := callPinned(t, client, server.h.ID())
		if resp.Status == wire.StatusSuccess || resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || !strings.Contains(resp.Error.Message, r.msg) {
			t.Errorf("%s: %+v, want unauthorized containing %q", r.name, resp.Error, r.msg)
			continue
		}
		if r.d != nil && strings.Contains(resp.Error.Message, r.d.Sig[:16]) {
			t.Errorf("%s: refusal echoes the delegation", r.name)
		}
		if server.m.Stats()[r.event] <= before {
			t.Errorf("%s: %s not counted: %v", r.name, r.event, server.m.Stats())
		}
	}
	if server.m.Stats()["task_unauthorized"] != uint64(len(refusals)) {
		t.Errorf("task_unauthorized %d, want %d", server.m.Stats()["task_unauthorized"], len(refusals))
	}
}

// TestOperator_ServerWithoutOperator: a node with no delegation of its own
// cannot tell an operator's nodes from strangers, so it serves none of
// them by delegation and says why.
func TestOperator_ServerWithoutOperator(t *testing.T) {
	_, opA, _ := ed25519.GenerateKey(nil)
	server := startEngineNode(t)
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	cd := delegationFor(client.h, opA, time.Now().Add(time.Hour))
	if err := client.m.SetOperator(&cd); err != nil {
		t.Fatal(err)
	}
	resp := callPinned(t, client, server.h.ID())
	if resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || !strings.Contains(resp.Error.Message, "no operator delegation") {
		t.Fatalf("got %+v", resp.Error)
	}
	if server.m.Stats()["operator_unverifiable"] != 1 {
		t.Fatalf("stats %v", server.m.Stats())
	}
}

// TestOperator_SetOperatorRefusesOthers: a node never presents a
// delegation that is not its own, valid one.
func TestOperator_SetOperatorRefusesOthers(t *testing.T) {
	_, opA, _ := ed25519.GenerateKey(nil)
	n := startNode(t, newTestHost(t, false), testConfig("n", false))
	other := newTestHost(t, false)
	for name, d := range map[string]wire.OperatorDelegation{
		"another node's": delegationFor(other, opA, time.Now().Add(time.Hour)),
		"expired":        delegationFor(n.h, opA, time.Now().Add(-time.Second)),
	} {
		if err := n.m.SetOperator(&d); err == nil {
			t.Errorf("%s delegation accepted", name)
		}
	}
	if n.m.OperatorKey() != "" {
		t.Fatal("a refused delegation was kept")
	}
}

// TestOperator_AdvertProvesOperator: a peer's advert carries its
// delegation; the receiver records the operator key only when it verifies
// for the advert's (signer-bound) node_id, so SameOperator, which decides
// where a node without a directory sends its tasks, cannot be claimed
// with another node's delegation.
func TestOperator_AdvertProvesOperator(t *testing.T) {
	_, opA, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	nodes := startCluster(t, 3, false, func(int) bool { return true })
	for _, i := range []int{0, 1} {
		d := delegationFor(nodes[i].h, opA, now.Add(time.Hour))
		if err := nodes[i].m.SetOperator(&d); err != nil {
			t.Fatal(err)
		}
	}
	// Node 2 presents node 1's delegation as its own.
	stolen := delegationFor(nodes[1].h, opA, now.Add(time.Hour))
	nodes[2].m.presentOperator(newDelegationMsg(&stolen), nil)
	keyA := base64.StdEncoding.EncodeToString(opA.Public().(ed25519.PublicKey))
	peerOf := func(n *testNode, of *testNode) (PeerInfo, bool) { return n.m.table.get(of.h.ID()) }
	waitFor(t, 20*time.Second, "node 0 to learn node 1's operator and node 2's advert", func() bool {
		p1, ok1 := peerOf(nodes[0], nodes[1])
		_, ok2 := peerOf(nodes[0], nodes[2])
		return ok1 && ok2 && p1.Operator == keyA && nodes[0].m.Stats()["advert_operator_invalid"] > 0
	})
	p1, _ := peerOf(nodes[0], nodes[1])
	p2, _ := peerOf(nodes[0], nodes[2])
	if !nodes[0].m.SameOperator(p1) {
		t.Fatal("node 1 not recognised as the same operator")
	}
	if p2.Operator != "" || nodes[0].m.SameOperator(p2) {
		t.Fatalf("node 2's stolen delegation was believed: %q", p2.Operator)
	}
}

func ptr[T any](v T) *T { return &v }

// TestOperator_MemberSkipsDelegationCheck: a caller a membership credential
// admits is not also checked against its delegation (no Ed25519 work, no
// operator_* count), even when the delegation is another operator's.
func TestOperator_MemberSkipsDelegationCheck(t *testing.T) {
	_, dirKey, _ := ed25519.GenerateKey(nil)
	_, opA, _ := ed25519.GenerateKey(nil)
	_, opB, _ := ed25519.GenerateKey(nil)
	server := startEngineNode(t)
	server.m.SetDirectoryKeys(dirKey.Public().(ed25519.PublicKey))
	sd := delegationFor(server.h, opA, time.Now().Add(time.Hour))
	if err := server.m.SetOperator(&sd); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	client.m.SetMembership(credentialFor(t, dirKey, client.h, time.Now(), time.Hour))
	cd := delegationFor(client.h, opB, time.Now().Add(time.Hour))
	if err := client.m.SetOperator(&cd); err != nil {
		t.Fatal(err)
	}
	if resp := callPinned(t, client, server.h.ID()); resp.Status != wire.StatusSuccess {
		t.Fatalf("member refused: %+v", resp.Error)
	}
	for ev, n := range server.m.Stats() {
		if strings.HasPrefix(ev, "operator_") {
			t.Fatalf("a member's delegation was checked: %s=%d", ev, n)
		}
	}
}
