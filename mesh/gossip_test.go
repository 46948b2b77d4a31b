package mesh

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// attacker is a host speaking raw gossipsub on the advert topic with no
// validator of its own, so it can publish anything.
type attacker struct {
	h     host.Host
	topic *pubsub.Topic
}

func newAttacker(t *testing.T, victim host.Host, opts ...pubsub.Option) *attacker {
	t.Helper()
	h := newTestHost(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(AdvertTopic)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.ID(), Addrs: victim.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "attacker to see the victim on the topic", func() bool {
		return slices.Contains(topic.ListPeers(), victim.ID())
	})
	return &attacker{h: h, topic: topic}
}

func (a *attacker) publish(t *testing.T, b []byte) {
	t.Helper()
	if err := a.topic.Publish(context.Background(), b); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func validAdvert(id peer.ID, seq uint64, ts time.Time) *Advert {
	nodeID, _ := NodeIDOf(id)
	return &Advert{
		Version: advertVersion, NodeID: nodeID, PeerID: id.String(), Seq: seq, TimestampMs: ts.UnixMilli(),
		Caps: []AdvertCap{{Intent: testIntent}}, MaxConcurrent: 4, Available: true,
	}
}

func mustEncode(t *testing.T, a *Advert) []byte {
	t.Helper()
	b, err := encodeAdvert(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGossipRejectsBadAdverts: malformed, oversized, wrong-origin, stale,
// replayed (seq not newer), future and unsigned adverts never reach the
// peer table, are counted, and the node keeps working.
func TestGossipRejectsBadAdverts(t *testing.T) {
	victim := startNode(t, newTestHost(t, false), testConfig("victim", true))
	bystander := newTestHost(t, false)
	att := newAttacker(t, victim.h)
	now := time.Now()

	big := validAdvert(att.h.ID(), 5, now)
	for i := range 40 {
		big.Caps = append(big.Caps, AdvertCap{Intent: testIntent, Models: []string{strings.Repeat("m", 250), string(rune('a' + i))}})
	}
	cases := []struct {
		name   string
		data   []byte
		reason string
	}{
		// Not CBOR at all.
		{"malformed", []byte("definitely not an advert"), reasonMalformed},
		// Structurally broken: load outside [0,1].
		{"bad load", mustEncode(t, func() *Advert { a := validAdvert(att.h.ID(), 6, now); a.Load = 7; return a }()), reasonMalformed},
		// Above AdvertMaxBytes.
		{"oversized", mustEncode(t, big), reasonOversized},
		// Signed by the attacker but claiming another peer's identity.
		{"wrong origin", mustEncode(t, validAdvert(bystander.ID(), 7, now)), reasonWrongOrigin},
		// Older than the peer TTL.
		{"stale", mustEncode(t, validAdvert(att.h.ID(), 8, now.Add(-time.Hour))), reasonStale},
		// Far in the future.
		{"future", mustEncode(t, validAdvert(att.h.ID(), 9, now.Add(time.Hour))), reasonFuture},
	}
	for _, tc := range cases {
		before := victim.m.Stats()[tc.reason]
		att.publish(t, tc.data)
		waitFor(t, 10*time.Second, tc.name+" to be counted as "+tc.reason, func() bool {
			return victim.m.Stats()[tc.reason] > before
		})
		if victim.m.table.Len() != 0 {
			t.Fatalf("%s: table has %d peers", tc.name, victim.m.table.Len())
		}
	}

	// A valid advert is accepted; a replay with a lower seq is ignored.
	att.publish(t, mustEncode(t, validAdvert(att.h.ID(), 100, time.Now())))
	waitFor(t, 10*time.Second, "valid advert", func() bool { seq, ok := victim.m.table.advertSeq(att.h.ID()); return ok && seq == 100 })
	before := victim.m.Stats()[reasonStale]
	att.publish(t, mustEncode(t, validAdvert(att.h.ID(), 50, time.Now())))
	waitFor(t, 10*time.Second, "replay to be ignored", func() bool { return victim.m.Stats()[reasonStale] > before })
	if seq, _ := victim.m.table.advertSeq(att.h.ID()); seq != 100 {
		t.Fatalf("replay replaced seq 100 with %d", seq)
	}

	// Unsigned: pubsub's StrictSign drops it before the validator. A signed
	// marker sent afterwards shows the victim processed its inbox.
	unsigned := newAttacker(t, victim.h, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign))
	unsigned.publish(t, mustEncode(t, validAdvert(unsigned.h.ID(), 1, time.Now())))
	att.publish(t, mustEncode(t, validAdvert(att.h.ID(), 101, time.Now())))
	waitFor(t, 10*time.Second, "marker advert", func() bool { seq, _ := victim.m.table.advertSeq(att.h.ID()); return seq == 101 })
	if _, ok := victim.m.table.get(unsigned.h.ID()); ok {
		t.Fatal("unsigned advert reached the peer table")
	}
	if victim.m.table.Len() != 1 {
		t.Fatalf("table has %d peers, want only the attacker's valid advert", victim.m.table.Len())
	}
}
