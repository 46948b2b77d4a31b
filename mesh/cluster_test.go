package mesh

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// TestMeshTenNodesLearnAndCall: ten nodes bootstrapped from one peer (as
// the directory would hand out) learn every serving node's advert, and a
// call from every node reaches a node serving the intent.
func TestMeshTenNodesLearnAndCall(t *testing.T) {
	serves := func(i int) bool { return i%2 == 0 }
	nodes := startCluster(t, 10, false, serves)
	waitFor(t, 60*time.Second, "every node to learn every advert", func() bool { return allServersKnown(nodes, serves) })

	servers := map[peer.ID]*testNode{}
	for i, n := range nodes {
		if serves(i) {
			servers[n.h.ID()] = n
		}
	}
	for i, n := range nodes {
		// A bound, not a measurement: ten race-instrumented hosts share
		// two cores in CI, so a first dial can take seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, info, err := n.m.Call(ctx, testCall(), CallOptions{})
		cancel()
		if err != nil {
			t.Fatalf("node %d: call: %v", i, err)
		}
		srv, ok := servers[info.Peer]
		if !ok || resp.Status != wire.StatusSuccess || resp.NodeID != srv.engine.name {
			t.Fatalf("node %d: served by %v (serving=%v), resp %+v", i, info.Peer, ok, resp)
		}
	}
}

// TestMeshFailoverWhenChosenNodeDies: the node executing a call is killed
// mid-call; the client retries on the other server within its budget.
func TestMeshFailoverWhenChosenNodeDies(t *testing.T) {
	serves := func(i int) bool { return i > 0 }
	nodes := startCluster(t, 3, false, serves)
	for _, n := range nodes[1:] {
		n.engine.block = make(chan struct{})
	}
	waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, serves) })

	type result struct {
		resp *wire.Response
		info CallInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, info, err := nodes[0].m.Call(ctx, testCall(), CallOptions{})
		done <- result{resp, info, err}
	}()
	var victim, survivor *testNode
	waitFor(t, 10*time.Second, "a server to receive the call", func() bool {
		for i, n := range nodes[1:] {
			if n.engine.calls.Load() > 0 {
				victim, survivor = n, nodes[2-i]
				return true
			}
		}
		return false
	})
	start := time.Now()
	victim.stop(t)
	close(survivor.engine.block)
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return")
	}
	if r.err != nil || r.resp.Status != wire.StatusSuccess {
		t.Fatalf("call after kill: resp %+v err %v", r.resp, r.err)
	}
	if r.info.Peer != survivor.h.ID() || r.info.Attempts != 2 || r.info.Tried[0] != victim.h.ID() {
		t.Fatalf("info %+v; victim %v survivor %v", r.info, victim.h.ID(), survivor.h.ID())
	}
	t.Logf("failover took %v", time.Since(start))

	// The dead node is still in the table (until PeerTTL) but a new call
	// must succeed within the retry budget whichever peer is ranked first.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start = time.Now()
	resp, info, err := nodes[0].m.Call(ctx, testCall(), CallOptions{})
	if err != nil || resp.Status != wire.StatusSuccess || info.Peer != survivor.h.ID() {
		t.Fatalf("second call: resp %+v info %+v err %v", resp, info, err)
	}
	t.Logf("second call took %v over %d attempts", time.Since(start), info.Attempts)
}

// TestMeshCircuitBreakerOpensAndCloses: five consecutive failures open the
// peer's circuit (iicp-semantics.md §7.1); calls then skip it; after the
// open period one probe goes through and its success closes the circuit.
func TestMeshCircuitBreakerOpensAndCloses(t *testing.T) {
	serves := func(i int) bool { return i == 1 }
	nodes := startCluster(t, 2, false, serves)
	client, server := nodes[0], nodes[1]
	waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, serves) })
	server.engine.setFail(wire.CodeUnavailable)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for i := range DefaultBreakerThreshold {
		resp, _, err := client.m.Call(ctx, testCall(), CallOptions{Peer: server.h.ID(), MaxAttempts: 1})
		if err != nil || resp.Error == nil || resp.Error.Code != wire.CodeUnavailable {
			t.Fatalf("call %d: resp %+v err %v", i, resp, err)
		}
	}
	if st := breakerState(client, server); st != BreakerOpen {
		t.Fatalf("after %d failures breaker is %q", DefaultBreakerThreshold, st)
	}
	before := server.engine.calls.Load()
	if _, _, err := client.m.Call(ctx, testCall(), CallOptions{}); !errors.Is(err, ErrNoCandidate) {
		t.Fatalf("call with open circuit: err %v, want ErrNoCandidate", err)
	}
	if server.engine.calls.Load() != before {
		t.Fatal("open circuit still let a call through")
	}

	server.engine.setFail("")
	waitFor(t, 3*time.Second, "half-open", func() bool { return breakerState(client, server) == BreakerHalfOpen })
	resp, info, err := client.m.Call(ctx, testCall(), CallOptions{})
	if err != nil || resp.Status != wire.StatusSuccess || info.Peer != server.h.ID() {
		t.Fatalf("probe call: resp %+v info %+v err %v", resp, info, err)
	}
	if st := breakerState(client, server); st != BreakerClosed {
		t.Fatalf("after successful probe breaker is %q", st)
	}
}

func breakerState(client, server *testNode) string {
	for _, p := range client.m.Peers() {
		if p.PeerID == server.h.ID() {
			return p.Breaker
		}
	}
	return ""
}

// TestMeshFailoverWhenIdleNodeDies: the best-ranked server dies while idle
// and is still in the peer table; the next call tries it, fails to reach
// it, and is served by the other server within the retry budget.
func TestMeshFailoverWhenIdleNodeDies(t *testing.T) {
	for _, tc := range []struct {
		name string
		tcp  bool
	}{{"quic", false}, {"tcp", true}} {
		t.Run(tc.name, func(t *testing.T) {
			client := startNode(t, newTestHost(t, tc.tcp), testConfig("client", false))
			best := startNode(t, newTestHost(t, tc.tcp), testConfig("best", true))
			cfg := testConfig("busy", true)
			cfg.Load = func() (float64, int) { return 0.9, 7 }
			busy := startNode(t, newTestHost(t, tc.tcp), cfg)
			boot := []peer.AddrInfo{{ID: client.h.ID(), Addrs: client.h.Addrs()}}
			best.m.AddBootstrapPeers(boot)
			busy.m.AddBootstrapPeers(boot)
			nodes := []*testNode{client, best, busy}
			serves := func(i int) bool { return i > 0 }
			waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, serves) })

			best.stop(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			resp, info, err := client.m.Call(ctx, testCall(), CallOptions{})
			if err != nil || resp.Status != wire.StatusSuccess {
				t.Fatalf("call: resp %+v err %v", resp, err)
			}
			if info.Attempts != 2 || info.Tried[0] != best.h.ID() || info.Peer != busy.h.ID() {
				t.Fatalf("info %+v; best %v busy %v", info, best.h.ID(), busy.h.ID())
			}
			t.Logf("failover over %s took %v", tc.name, time.Since(start))
		})
	}
}

// TestMeshCapacityExceededSwitchesWithoutBackoff: iicp-semantics.md §2.2 —
// a capacity_exceeded answer moves the call to the next peer at once; the
// (deliberately long) retry backoff is not applied.
func TestMeshCapacityExceededSwitchesWithoutBackoff(t *testing.T) {
	ccfg := testConfig("client", false)
	ccfg.RetryBase = 3 * time.Second
	client := startNode(t, newTestHost(t, false), ccfg)
	full := startNode(t, newTestHost(t, false), testConfig("full", true))
	cfg := testConfig("free", true)
	cfg.Load = func() (float64, int) { return 0.9, 7 } // ranked after "full"
	free := startNode(t, newTestHost(t, false), cfg)
	full.engine.setFail(wire.CodeCapacityExceeded)
	boot := []peer.AddrInfo{{ID: client.h.ID(), Addrs: client.h.Addrs()}}
	full.m.AddBootstrapPeers(boot)
	free.m.AddBootstrapPeers(boot)
	nodes := []*testNode{client, full, free}
	waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, func(i int) bool { return i > 0 }) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	resp, info, err := client.m.Call(ctx, testCall(), CallOptions{})
	elapsed := time.Since(start)
	if err != nil || resp.Status != wire.StatusSuccess || info.Peer != free.h.ID() || info.Attempts != 2 {
		t.Fatalf("resp %+v info %+v err %v", resp, info, err)
	}
	if elapsed >= ccfg.RetryBase*8/10 {
		t.Fatalf("switch took %v: backoff was applied", elapsed)
	}
	if n := client.m.breakers.Consecutive(full.h.ID()); n != 0 {
		t.Fatalf("capacity_exceeded counted %d breaker failures", n)
	}
}
