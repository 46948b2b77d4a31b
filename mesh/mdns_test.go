package mesh

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMDNS_FoundPeersBoundedAndDialled: what mDNS reports is a hint. A
// peer whose ID embeds no Ed25519 key is ignored, the queue drops what it
// cannot hold (a LAN flood), and a queued peer is dialled on the
// addresses this host can use and counted; the advert it then gossips is
// verified as any other.
func TestMDNS_FoundPeersBoundedAndDialled(t *testing.T) {
	a := startNode(t, newTestHost(t, false), testConfig("a", false))
	b := startNode(t, newTestHost(t, false), testConfig("b", true))
	n := mdnsNotifee{m: a.m, found: make(chan peer.AddrInfo, 1)}

	_, rsaPub, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, _ := peer.IDFromPublicKey(rsaPub)
	n.HandlePeerFound(peer.AddrInfo{ID: rsaID, Addrs: b.h.Addrs()})
	n.HandlePeerFound(peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}) // itself
	n.HandlePeerFound(peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()})
	n.HandlePeerFound(peer.AddrInfo{ID: randomPeer(t), Addrs: b.h.Addrs()})
	st := a.m.Stats()
	if st["mdns_ignored"] != 1 || st["mdns_found"] != 1 || st["mdns_dropped"] != 1 {
		t.Fatalf("stats %v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.m.dialFound(ctx, <-n.found)
	if a.m.Stats()["mdns_connected"] != 1 {
		t.Fatalf("found peer not dialled: %v", a.m.Stats())
	}
	waitFor(t, 10*time.Second, "b's advert via the mDNS-made connection", func() bool {
		_, ok := a.m.table.advertSeq(b.h.ID())
		return ok
	})
}
