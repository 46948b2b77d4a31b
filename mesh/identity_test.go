package mesh

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/wire"
)

// TestMeshIdentity_ForgedAdvertRejected: a hostile libp2p host (real, on
// loopback) signs an advert with its own key but claims a real node's
// node_id. The victim rejects it, counts it, and never puts the attacker
// in its peer table; the same attacker advertising its own node_id is
// accepted, so the rejection is the node_id binding and nothing else.
func TestMeshIdentity_ForgedAdvertRejected(t *testing.T) {
	victim := startNode(t, newTestHost(t, false), testConfig("victim", true))
	realHost := newTestHost(t, false)
	realNode, err := NodeIDOf(realHost.ID())
	if err != nil {
		t.Fatal(err)
	}
	att := newAttacker(t, victim.h)
	for i, claim := range []string{realNode, "", "not-a-node-id"} {
		a := validAdvert(att.h.ID(), uint64(10+i), time.Now())
		a.NodeID = claim
		before := victim.m.Stats()[reasonNodeID]
		att.publish(t, mustEncode(t, a))
		waitFor(t, 10*time.Second, "forged advert to be counted", func() bool {
			return victim.m.Stats()[reasonNodeID] > before
		})
		if _, ok := victim.m.table.get(att.h.ID()); ok || victim.m.table.Len() != 0 {
			t.Fatalf("claim %q: forged advert reached the peer table", claim)
		}
	}
	for _, p := range victim.m.Peers() {
		if p.NodeID == realNode {
			t.Fatal("the real node's node_id points at the attacker")
		}
	}
	// The rejections are a Prometheus counter too.
	reg := prometheus.NewRegistry()
	if err := reg.Register(victim.m.Collector()); err != nil {
		t.Fatal(err)
	}
	if got := eventCount(t, reg, reasonNodeID); got != 3 {
		t.Fatalf("meshnode_mesh_events_total{event=node_id_mismatch} = %v, want 3", got)
	}
	// Control: the attacker's own node_id is accepted, under its own peer.
	att.publish(t, mustEncode(t, validAdvert(att.h.ID(), 50, time.Now())))
	waitFor(t, 10*time.Second, "honest advert", func() bool { _, ok := victim.m.table.get(att.h.ID()); return ok })
	p, _ := victim.m.table.get(att.h.ID())
	if own, _ := NodeIDOf(att.h.ID()); p.NodeID != own {
		t.Fatalf("table node_id %q, want the key's %q", p.NodeID, own)
	}
}

// TestMeshIdentity_ForgedResponseRefused: a hostile peer (real host, real
// task stream) answers a CALL with a RESPONSE naming another node's
// node_id. The caller returns an error wrapping ErrForgedResponse, never
// the forged answer, and counts it; an honest peer's answer still carries
// its key's node_id.
func TestMeshIdentity_ForgedResponseRefused(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	hostile := startNode(t, newTestHost(t, false), testConfig("hostile", true))
	honest := startNode(t, newTestHost(t, false), testConfig("honest", true))
	hostile.engine.name = honest.engine.name // answers as the honest node
	for _, n := range []*testNode{hostile, honest} {
		client.h.Peerstore().AddAddrs(n.h.ID(), n.h.Addrs(), time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := testCall()
	resp, _, err := client.m.Call(ctx, call, CallOptions{Peer: hostile.h.ID(), MaxAttempts: 1})
	if !errors.Is(err, ErrForgedResponse) || resp != nil {
		t.Fatalf("forged answer: resp %v err %v", resp, err)
	}
	if client.m.Stats()["response_node_id_mismatch"] == 0 {
		t.Fatal("forged response not counted")
	}
	resp, info, err := client.m.Call(ctx, testCall(), CallOptions{Peer: honest.h.ID(), MaxAttempts: 1})
	if err != nil || resp.Status != wire.StatusSuccess || resp.NodeID != honest.engine.name || info.Peer != honest.h.ID() {
		t.Fatalf("honest answer: %+v %v %v", resp, info, err)
	}
}

// TestMeshIdentity_CallerNodeIDProven: the serving engine learns the
// caller's node_id from the authenticated stream (for consumer-token sub
// checks), not from anything the caller says.
func TestMeshIdentity_CallerNodeIDProven(t *testing.T) {
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	server := startNode(t, newTestHost(t, false), testConfig("server", true))
	client.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := client.m.Call(ctx, testCall(), CallOptions{Peer: server.h.ID()}); err != nil {
		t.Fatal(err)
	}
	want, _ := NodeIDOf(client.h.ID())
	if got := server.engine.caller().PeerNodeID; got != want {
		t.Fatalf("caller node_id %q, want %q", got, want)
	}
}

// TestMeshIdentity_DirectoryPeerBound: a directory entry whose node_id is
// not its meshnode.p2p peer's key (a registration pointing a real node's
// node_id at the registrant's peer) is refused and counted; the same entry
// under the peer's own node_id is accepted.
func TestMeshIdentity_DirectoryPeerBound(t *testing.T) {
	n := startNode(t, newTestHost(t, false), testConfig("n", false))
	hostile := newTestHost(t, false)
	victim := randomPeer(t)
	victimNode, _ := NodeIDOf(victim)
	raw := P2PExtension(hostile)
	if _, err := n.m.ParseDirectoryPeer(victimNode, raw); !errors.Is(err, ErrNodeIDMismatch) || !errors.Is(err, ErrBadP2PExtension) {
		t.Fatalf("mismatched entry: %v", err)
	}
	if n.m.Stats()["directory_peer_node_id_mismatch"] != 1 {
		t.Fatalf("stats %v", n.m.Stats())
	}
	own, _ := NodeIDOf(hostile.ID())
	if ai, err := n.m.ParseDirectoryPeer(own, raw); err != nil || ai.ID != hostile.ID() {
		t.Fatalf("own entry: %v %v", ai, err)
	}
}

// TestMeshIdentity_DHTEntryNodeID: a peer known only from a DHT provider
// record gets the node_id its key proves.
func TestMeshIdentity_DHTEntryNodeID(t *testing.T) {
	tb := newPeerTable(randomPeer(t))
	p := randomPeer(t)
	tb.addProvider(p, testIntent, time.Now())
	e, ok := tb.get(p)
	want, _ := NodeIDOf(p)
	if !ok || e.NodeID != want || want == "" {
		t.Fatalf("dht entry %+v, want node_id %q", e, want)
	}
	// A peer ID without an embedded Ed25519 key has no node_id: not recorded.
	tb.addProvider(peer.ID("not-a-key"), testIntent, time.Now())
	if tb.Len() != 1 {
		t.Fatalf("keyless peer recorded: %d", tb.Len())
	}
}

// eventCount reads meshnode_mesh_events_total{event} from reg.
func eventCount(t *testing.T, reg *prometheus.Registry, event string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshnode_mesh_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "event" && l.GetValue() == event {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
