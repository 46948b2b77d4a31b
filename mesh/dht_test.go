package mesh

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestDHTProvidersUnderOwnPrefix: nodes speak only /meshnode/kad/1.0.0,
// servers provide their intents, and a node finds them by intent alone.
func TestDHTProvidersUnderOwnPrefix(t *testing.T) {
	serves := func(i int) bool { return i == 3 }
	nodes := startCluster(t, 4, true, serves)
	server, client := nodes[3], nodes[1]
	protos := server.h.Mux().Protocols()
	if !slices.Contains(protos, protocol.ID("/meshnode/kad/1.0.0")) || slices.Contains(protos, protocol.ID("/ipfs/kad/1.0.0")) {
		t.Fatalf("dht protocols: %v", protos)
	}
	waitFor(t, 20*time.Second, "the server to provide", server.m.Provided)
	key, err := IntentCID(testIntent)
	if err != nil {
		t.Fatal(err)
	}
	var found []peer.AddrInfo
	waitFor(t, 10*time.Second, "the provider record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		found, err = client.m.dht.FindProviders(ctx, key)
		return err == nil && slices.ContainsFunc(found, func(ai peer.AddrInfo) bool { return ai.ID == server.h.ID() })
	})
	if n := client.m.findProviders(context.Background(), testIntent); n < 1 {
		t.Fatalf("findProviders recorded %d providers", n)
	}
	if _, ok := client.m.table.get(server.h.ID()); !ok {
		t.Fatal("provider not in the peer table")
	}
}

// TestAdvertOnLoadChangeAndExpiry: a load jump is advertised at once (well
// before the periodic interval), and a silent peer expires after PeerTTL.
func TestAdvertOnLoadChangeAndExpiry(t *testing.T) {
	var load atomic.Uint64 // load × 100
	cfg := testConfig("server", true)
	cfg.AdvertInterval = 5 * time.Second
	cfg.PeerTTL = 20 * time.Second
	cfg.Load = func() (float64, int) { l := load.Load(); return float64(l) / 100, int(l / 25) }
	server := startNode(t, newTestHost(t, false), cfg)
	ocfg := testConfig("observer", false)
	ocfg.PeerTTL = 2 * time.Second
	ocfg.AdvertInterval = time.Second
	observer := startNode(t, newTestHost(t, false), ocfg)
	observer.m.AddBootstrapPeers([]peer.AddrInfo{{ID: server.h.ID(), Addrs: server.h.Addrs()}})
	t0 := time.Now()
	waitFor(t, 10*time.Second, "first advert", func() bool { _, ok := observer.m.table.get(server.h.ID()); return ok })
	t.Logf("first advert after %v", time.Since(t0))

	load.Store(75)
	start := time.Now()
	waitFor(t, 10*time.Second, "load advert", func() bool {
		e, _ := observer.m.table.get(server.h.ID())
		return e.Load == 0.75 && e.ActiveJobs == 3
	})
	if d := time.Since(start); d >= cfg.AdvertInterval {
		t.Fatalf("load change took %v, not faster than the periodic advert", d)
	}
	server.stop(t)
	t0 = time.Now()
	waitFor(t, 10*time.Second, "expiry", func() bool { _, ok := observer.m.table.get(server.h.ID()); return !ok })
	t.Logf("expired after %v", time.Since(t0))
	if observer.m.Stats()["peer_expired"] == 0 {
		t.Fatal("expiry not counted")
	}
}
