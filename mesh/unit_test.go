package mesh

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/wire"
)

func randomPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pubsubMsg(from peer.ID, data []byte, signed bool) *pubsub.Message {
	m := &pb.Message{Data: data, From: []byte(from)}
	if signed {
		m.Signature = []byte("sig") // pubsub verified it before the validator runs
	}
	return &pubsub.Message{Message: m}
}

// TestAdvertValidator exercises every validator branch with a fake clock.
func TestAdvertValidator(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	origin, other := randomPeer(t), randomPeer(t)
	table := newPeerTable(randomPeer(t))
	table.upsertAdvert(validAdvert(other, 10, now), now)
	v := &advertValidator{
		maxBytes: 1024, ttl: time.Minute, skew: time.Minute, now: func() time.Time { return now },
		table: table, limiter: newRateLimiter(1, 2), stats: &stats{},
	}
	enc := func(a *Advert) []byte { return mustEncode(t, a) }
	nan := validAdvert(origin, 1, now)
	nan.Load = math.NaN()
	cases := []struct {
		name string
		msg  *pubsub.Message
		want pubsub.ValidationResult
		why  string
	}{
		// A fresh, well-formed advert from its own origin.
		{"valid", pubsubMsg(origin, enc(validAdvert(origin, 1, now)), true), pubsub.ValidationAccept, ""},
		// No signature at all.
		{"unsigned", pubsubMsg(origin, enc(validAdvert(origin, 2, now)), false), pubsub.ValidationReject, reasonUnsigned},
		// Bigger than maxBytes.
		{"oversized", pubsubMsg(origin, make([]byte, 2048), true), pubsub.ValidationReject, reasonOversized},
		// Not CBOR.
		{"garbage", pubsubMsg(origin, []byte{0xff, 0xfe}, true), pubsub.ValidationReject, reasonMalformed},
		// NaN load (NaN is forbidden by the decoder).
		{"nan load", pubsubMsg(origin, enc(nan), true), pubsub.ValidationReject, reasonMalformed},
		// Advertising another peer.
		{"wrong origin", pubsubMsg(origin, enc(validAdvert(other, 50, now)), true), pubsub.ValidationReject, reasonWrongOrigin},
		// Its own peer, another node's node_id (issue 12).
		{"node_id of another", pubsubMsg(origin, enc(func() *Advert {
			a := validAdvert(origin, 60, now)
			a.NodeID, _ = NodeIDOf(other)
			return a
		}()), true), pubsub.ValidationReject, reasonNodeID},
		// Older than ttl.
		{"stale", pubsubMsg(origin, enc(validAdvert(origin, 3, now.Add(-2*time.Minute))), true), pubsub.ValidationIgnore, reasonStale},
		// Seq not newer than the table's.
		{"replay", pubsubMsg(other, enc(validAdvert(other, 10, now)), true), pubsub.ValidationIgnore, reasonStale},
		// Burst 2: the "valid" and "stale" adverts took both tokens of origin.
		{"rate limited", pubsubMsg(origin, enc(validAdvert(origin, 4, now)), true), pubsub.ValidationIgnore, reasonRateLimited},
	}
	for _, tc := range cases {
		before := v.stats.snapshot()[tc.why]
		got := v.validate(context.Background(), origin, tc.msg)
		if got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if tc.why != "" && v.stats.snapshot()[tc.why] != before+1 {
			t.Errorf("%s: reason %s not counted", tc.name, tc.why)
		}
		if got == pubsub.ValidationAccept {
			if a, ok := tc.msg.ValidatorData.(*Advert); !ok || a.PeerID != origin.String() {
				t.Errorf("%s: validator data %v", tc.name, tc.msg.ValidatorData)
			}
		}
	}
}

func TestAdvertDecodeRejectsStructure(t *testing.T) {
	id := randomPeer(t)
	now := time.Now()
	mut := []struct {
		name string
		f    func(*Advert)
	}{
		{"version", func(a *Advert) { a.Version = 2 }},
		{"bad peer id", func(a *Advert) { a.PeerID = "nope" }},
		{"bad intent", func(a *Advert) { a.Caps = []AdvertCap{{Intent: "chat"}} }},
		{"empty model", func(a *Advert) { a.Caps = []AdvertCap{{Intent: testIntent, Models: []string{""}}} }},
		{"bad addr", func(a *Advert) { a.Addrs = []string{"/ip4/999.1.1.1/tcp/1"} }},
		{"negative jobs", func(a *Advert) { a.ActiveJobs = -1 }},
		{"zero seq", func(a *Advert) { a.Seq = 0 }},
		{"load above one", func(a *Advert) { a.Load = 1.5 }},
		{"too many addrs", func(a *Advert) { a.Addrs = slices.Repeat([]string{"/ip4/1.2.3.4/tcp/1"}, maxAdvertAddrs+1) }},
	}
	for _, tc := range mut {
		a := validAdvert(id, 1, now)
		tc.f(a)
		if _, err := decodeAdvert(mustEncode(t, a)); !errors.Is(err, errAdvertMalformed) {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
	if _, err := decodeAdvert(mustEncode(t, validAdvert(id, 1, now))); err != nil {
		t.Fatalf("valid advert: %v", err)
	}
}

// TestPeerTableMergeOrderIndependent: any delivery order of the same
// adverts yields the same table (newest seq wins, replays change nothing).
func TestPeerTableMergeOrderIndependent(t *testing.T) {
	self, p := randomPeer(t), randomPeer(t)
	now := time.Now()
	ads := []*Advert{validAdvert(p, 1, now), validAdvert(p, 3, now), validAdvert(p, 2, now)}
	ads[1].Load = 0.75
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}, {1, 1, 0, 2, 2}} {
		tb := newPeerTable(self)
		for _, i := range order {
			tb.upsertAdvert(ads[i], now)
		}
		e, ok := tb.get(p)
		if !ok || e.Seq != 3 || e.Load != 0.75 {
			t.Fatalf("order %v: entry %+v", order, e)
		}
	}
	// Own adverts never enter the table.
	tb := newPeerTable(self)
	if tb.upsertAdvert(validAdvert(self, 1, now), now) || tb.Len() != 0 {
		t.Fatal("self advert stored")
	}
}

func TestPeerTableProvidersAndExpiry(t *testing.T) {
	self, a, b := randomPeer(t), randomPeer(t), randomPeer(t)
	t0 := time.Now()
	tb := newPeerTable(self)
	tb.upsertAdvert(validAdvert(a, 5, t0), t0)
	tb.addProvider(a, wire.IntentEmbedding, t0) // advert is authoritative: ignored
	tb.addProvider(b, testIntent, t0.Add(time.Minute))
	if e, _ := tb.get(a); e.FromDHT || e.Serves(wire.IntentEmbedding, "") {
		t.Fatalf("provider record changed an advertised entry: %+v", e)
	}
	if e, _ := tb.get(b); !e.FromDHT || !e.Serves(testIntent, "any-model") {
		t.Fatalf("provider entry: %+v", e)
	}
	// A later advert replaces the DHT-only entry.
	tb.upsertAdvert(validAdvert(b, 1, t0), t0.Add(time.Minute))
	if e, _ := tb.get(b); e.FromDHT || e.Seq != 1 {
		t.Fatalf("advert did not replace DHT entry: %+v", e)
	}
	gone := tb.expire(t0.Add(90*time.Second), 60*time.Second)
	if len(gone) != 1 || gone[0] != a || tb.Len() != 1 {
		t.Fatalf("expired %v, left %d", gone, tb.Len())
	}
}

func TestSelectionValueOrdering(t *testing.T) {
	req := selectRequest{intent: testIntent}
	base := PeerInfo{Caps: []AdvertCap{{Intent: testIntent}}, Available: true, MaxConcurrent: 4}
	idle, busy, far, near, flaky, dhtOnly := base, base, base, base, base, base
	busy.Load, busy.ActiveJobs = 0.9, 3
	far.RTT, near.RTT = 300*time.Millisecond, 2*time.Millisecond
	dhtOnly = PeerInfo{Caps: base.Caps, FromDHT: true}
	v := func(p PeerInfo, failures int) float64 { return selectionValue(&p, req, failures, 5) }
	switch {
	case v(idle, 0) <= v(busy, 0):
		t.Error("idle peer not preferred over busy peer")
	case v(near, 0) <= v(far, 0):
		t.Error("near peer not preferred over far peer")
	case v(flaky, 3) >= v(idle, 0):
		t.Error("failures do not lower the value")
	case v(dhtOnly, 0) >= v(idle, 0):
		t.Error("DHT-only peer preferred over advertised idle peer")
	}
	regionReq := selectRequest{intent: testIntent, region: "eu"}
	eu, us := base, base
	eu.Region, us.Region = "eu", "us"
	if selectionValue(&eu, regionReq, 0, 5) <= selectionValue(&us, regionReq, 0, 5) {
		t.Error("region match not preferred")
	}
	modelReq := selectRequest{intent: testIntent, model: "m1"}
	listed := base
	listed.Caps = []AdvertCap{{Intent: testIntent, Models: []string{"m1"}}}
	if selectionValue(&listed, modelReq, 0, 5) <= selectionValue(&base, modelReq, 0, 5) {
		t.Error("model match not preferred")
	}
	// Hard gates: unavailable peers and peers not serving the model are out.
	unavail := base
	unavail.Available = false
	other := base
	other.Caps = []AdvertCap{{Intent: testIntent, Models: []string{"m2"}}}
	if eligible(&unavail, req) || eligible(&other, modelReq) || !eligible(&base, modelReq) {
		t.Error("eligibility gates wrong")
	}
	ranked := rank([]PeerInfo{busy, idle}, req, func(PeerInfo) peerStat { return peerStat{rate: 1} }, 5)
	if ranked[0].Load != 0 {
		t.Error("rank does not put the best peer first")
	}
}

// TestRank_EchoLastAndObservedSuccess: a peer offering the intent only
// through the echo backend ranks after every peer with a real model, even
// an idle, near echo peer against a busy, far real one; among real peers
// the observed success rate lowers a flaky peer below a reliable one.
func TestRank_EchoLastAndObservedSuccess(t *testing.T) {
	req := selectRequest{intent: testIntent}
	echo := PeerInfo{PeerID: "echo", Caps: []AdvertCap{{Intent: testIntent, Models: []string{wire.EchoModel}}}, Available: true, MaxConcurrent: 8, RTT: time.Millisecond}
	real := PeerInfo{PeerID: "real", Caps: []AdvertCap{{Intent: testIntent, Models: []string{"llama3"}}}, Available: true, MaxConcurrent: 8,
		Load: 0.9, ActiveJobs: 7, RTT: 300 * time.Millisecond}
	ok := func(PeerInfo) peerStat { return peerStat{rate: 1} }
	for range 20 { // the shuffle must never matter
		if r := rank([]PeerInfo{echo, real}, req, ok, 5); r[0].PeerID != "real" {
			t.Fatalf("echo ranked before a real model: %v", r[0].PeerID)
		}
	}
	if !echo.EchoOnly(testIntent) || real.EchoOnly(testIntent) {
		t.Fatal("EchoOnly wrong")
	}
	flaky, steady := real, real
	flaky.PeerID, steady.PeerID = "flaky", "steady"
	var rates successRates
	for range 5 {
		rates.record("flaky", false)
		rates.record("steady", true)
	}
	stat := func(p PeerInfo) peerStat { return peerStat{rate: rates.rate(p.PeerID)} }
	for range 20 {
		if r := rank([]PeerInfo{flaky, steady}, req, stat, 5); r[0].PeerID != "steady" {
			t.Fatal("observed failures do not lower a peer")
		}
	}
	if rates.rate("unseen") != 1 || rates.rate("flaky") >= 0.5 {
		t.Fatalf("rates: unseen %v flaky %v", rates.rate("unseen"), rates.rate("flaky"))
	}
}

func TestJudgeClassifies(t *testing.T) {
	m := &Mesh{now: time.Now, breakers: newBreakers(5, time.Minute)}
	p := randomPeer(t)
	resp := func(c wire.Code) *wire.Response { return errorResponse("", wire.NewError(c, "x")) }
	cases := []struct {
		name     string
		resp     *wire.Response
		err      error
		want     outcome
		failures int
	}{
		{"transport error", nil, errTest, outRetry, 1},
		{"capacity exceeded switches", resp(wire.CodeCapacityExceeded), nil, outSwitch, 1},
		{"rate limited retries", resp(wire.CodeRateLimited), nil, outRetry, 1},
		{"unavailable retries and counts", resp(wire.CodeUnavailable), nil, outRetry, 2},
		{"timeout retries and counts", resp(wire.CodeTaskTimeout), nil, outRetry, 3},
		{"backend error is final and counts", resp(wire.CodeBackendError), nil, outFinal, 4},
		{"internal error is final and counts", resp(wire.CodeInternal), nil, outFinal, 5},
		{"client error is final and healthy", resp(wire.CodeValidationError), nil, outFinal, 0},
		{"unauthorized is final (§6.1)", resp(wire.CodeUnauthorized), nil, outFinal, 0},
		{"model not on this peer moves on", resp(wire.CodeE029), nil, outRetry, 0},
		{"local error stops", nil, wire.NewError(wire.CodePayloadTooLarge, "x"), outLocalError, 0},
		{"success", &wire.Response{Status: wire.StatusSuccess}, nil, outFinal, 0},
	}
	for _, tc := range cases {
		if got := m.judge(p, tc.resp, tc.err); got != tc.want || m.breakers.Consecutive(p) != tc.failures {
			t.Errorf("%s: outcome %v failures %d, want %v %d", tc.name, got, m.breakers.Consecutive(p), tc.want, tc.failures)
		}
	}
}

func TestP2PExtensionRoundTrip(t *testing.T) {
	h := newTestHost(t, false)
	raw := P2PExtension(h)
	hNode, _ := NodeIDOf(h.ID())
	info, err := ParseP2PExtension(hNode, raw)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != h.ID() || len(info.Addrs) != len(h.Addrs()) || !info.Addrs[0].Equal(h.Addrs()[0]) {
		t.Fatalf("round trip: %v vs %v %v", info, h.ID(), h.Addrs())
	}
	other := randomPeer(t)
	for _, tc := range []struct {
		name string
		raw  string
	}{
		{"empty", ``},
		{"not json", `{`},
		{"bad peer id", `{"peer_id":"x","addrs":["/ip4/1.2.3.4/tcp/1"]}`},
		{"no addrs", `{"peer_id":"` + h.ID().String() + `","addrs":[]}`},
		{"only bad addrs", `{"peer_id":"` + h.ID().String() + `","addrs":["nope","/ip4/0.0.0.0/tcp/1"]}`},
		{"addr of another peer", `{"peer_id":"` + h.ID().String() + `","addrs":["/ip4/1.2.3.4/tcp/1/p2p/` + other.String() + `"]}`},
	} {
		if _, err := ParseP2PExtension(hNode, json.RawMessage(tc.raw)); !errors.Is(err, ErrBadP2PExtension) {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
	// A /p2p suffix naming the peer itself is stripped.
	ok := `{"peer_id":"` + h.ID().String() + `","addrs":["/ip4/1.2.3.4/udp/9/quic-v1/p2p/` + h.ID().String() + `"]}`
	info, err = ParseP2PExtension(hNode, json.RawMessage(ok))
	if err != nil || !info.Addrs[0].Equal(ma.StringCast("/ip4/1.2.3.4/udp/9/quic-v1")) {
		t.Fatalf("self suffix: %v %v", info, err)
	}
}

func TestIntentCIDStable(t *testing.T) {
	a, err := IntentCID(testIntent)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := IntentCID(testIntent)
	c, _ := IntentCID(wire.IntentEmbedding)
	if !a.Equals(b) || a.Equals(c) || a.Prefix().Version != 1 {
		t.Fatalf("cids %v %v %v", a, b, c)
	}
}

func TestConfigAndHostValidation(t *testing.T) {
	h := newTestHost(t, true)
	bad := []Config{
		{DHTMode: "weird"},
		{AdvertInterval: time.Second, PeerTTL: time.Second},
		{Capabilities: []wire.Capability{{Intent: "not-an-intent"}}},
		{LoadChangeThreshold: 2},
		{MaxCallBytes: 32 << 20},
	}
	for i, cfg := range bad {
		cfg.Logger = testConfig("x", false).Logger
		if _, err := New(h, cfg, nil); !errors.Is(err, errConfig) {
			t.Errorf("config %d: err %v", i, err)
		}
	}
	if _, err := New(h, testConfig("x", true), nil); !errors.Is(err, errConfig) {
		t.Error("capabilities without engine accepted")
	}
	secp, _, _ := crypto.GenerateSecp256k1Key(rand.Reader)
	if _, err := NewHost(context.Background(), secp, HostConfig{}); err == nil {
		t.Error("non-Ed25519 identity accepted")
	}
}
