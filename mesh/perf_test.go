package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/wire"
)

// gateEngine holds every call until want calls are executing at once,
// then lets them all finish; later calls pass straight through. It proves
// that want streams were open on the serving host at the same moment.
type gateEngine struct {
	want    int64
	running atomic.Int64
	peak    atomic.Int64
	calls   atomic.Int64
	open    chan struct{}
	once    sync.Once
}

func (e *gateEngine) Execute(ctx context.Context, call *wire.Call, _ wire.Caller) *wire.Response {
	e.calls.Add(1)
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for p := e.peak.Load(); n > p && !e.peak.CompareAndSwap(p, n); p = e.peak.Load() {
	}
	if n >= e.want {
		e.once.Do(func() { close(e.open) })
	}
	select {
	case <-e.open:
	case <-ctx.Done():
		return errorResponse(call.TaskID, wire.NewError(wire.CodeTaskTimeout, "gate never opened"))
	}
	return &wire.Response{TaskID: call.TaskID, Status: wire.StatusSuccess, Result: call.Payload}
}

// TestMeshManyConcurrentCallsOnePeer: 96 callers on one peer, more than
// the 64 task streams per peer the serving host used to admit. First all
// 96 must be inside the engine at once (every stream open together), then
// 96 callers make 5 calls each back to back, so new streams arrive while
// finished ones are still being released. One attempt per call: a
// stream refused by a resource manager would surface as an error.
func TestMeshManyConcurrentCallsOnePeer(t *testing.T) {
	const callers, rounds = 96, 5
	client := startNode(t, newTestHost(t, false), testConfig("client", false))
	eng := &gateEngine{want: callers, open: make(chan struct{})}
	scfg := testConfig("server", true)
	scfg.MaxConcurrent = 4 * callers
	sh := newTestHost(t, false)
	server, err := New(sh, scfg, eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	client.h.Peerstore().AddAddrs(sh.ID(), sh.Addrs(), time.Hour)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers*(rounds+1))
	call := func() {
		resp, info, err := client.m.Call(ctx, testCall(), CallOptions{Peer: sh.ID(), MaxAttempts: 1})
		switch {
		case err != nil:
			errs <- err
		case resp.Status != wire.StatusSuccess || info.Attempts != 1:
			errs <- fmt.Errorf("status %s attempts %d: %v", resp.Status, info.Attempts, resp.Error)
		}
	}
	for range callers {
		wg.Go(call)
	}
	wg.Wait()
	if p := eng.peak.Load(); p < callers {
		t.Errorf("peak concurrency in the engine %d, want %d", p, callers)
	}
	for range callers {
		wg.Go(func() {
			for range rounds {
				call()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, want := eng.calls.Load(), int64(callers*(rounds+1)); got != want {
		t.Errorf("engine ran %d calls, want %d", got, want)
	}
	if n := client.m.Stats()["call_stream_refused"]; n != 0 {
		t.Errorf("%d streams refused by a resource manager", n)
	}
	if n := client.m.calls.inUse(sh.ID()); n != 0 {
		t.Errorf("%d stream slots still held", n)
	}
}

// TestInflightCapsPerPeer: the client-side cap queues the call past the
// limit until a slot frees, gives up with the context, and forgets idle peers.
func TestInflightCapsPerPeer(t *testing.T) {
	f := newInflight(2)
	p, q := randomPeer(t), randomPeer(t)
	ctx := context.Background()
	for range 2 {
		if err := f.acquire(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Another peer has its own slots.
	if err := f.acquire(ctx, q); err != nil {
		t.Fatal(err)
	}
	f.release(q)
	// A third call to p waits, and gives up with its context.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := f.acquire(short, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire past the cap: %v", err)
	}
	// A waiting call gets the slot a finished one releases.
	got := make(chan error, 1)
	go func() { got <- f.acquire(ctx, p) }()
	f.release(p)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never got the released slot")
	}
	f.release(p)
	f.release(p)
	f.mu.Lock()
	n := len(f.m)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d idle peers still tracked", n)
	}
}

// TestJudgeResourceLimitSwitches: a stream refused by a resource manager,
// remote (reset 0x1002) or local, is capacity_exceeded in effect
// (iicp-semantics.md §2.2): next peer, no backoff, no breaker failure.
func TestJudgeResourceLimitSwitches(t *testing.T) {
	m := &Mesh{now: time.Now, breakers: newBreakers(5, time.Minute)}
	p := randomPeer(t)
	for _, tc := range []struct {
		name string
		err  error
		want outcome
	}{
		// The serving host's resource manager reset the stream.
		{"remote reset 0x1002", fmt.Errorf("reading response: %w", &network.StreamError{ErrorCode: network.StreamResourceLimitExceeded, Remote: true}), outSwitch},
		// This host's own limits refused to open it.
		{"local limit", fmt.Errorf("opening task stream: %w", network.ErrResourceLimitExceeded), outSwitch},
		// Any other reset is a transport failure.
		{"other reset", &network.StreamError{ErrorCode: 0, Remote: true}, outRetry},
		// Waiting for our own per-peer cap ran out of time: our problem.
		{"slot wait", fmt.Errorf("%w: %w", errSlotWait, context.DeadlineExceeded), outLocalError},
	} {
		before := m.breakers.Consecutive(p)
		got := m.judge(p, nil, tc.err)
		failed := m.breakers.Consecutive(p) - before
		if got != tc.want || (tc.want != outRetry) != (failed == 0) {
			t.Errorf("%s: outcome %v, breaker +%d; want %v", tc.name, got, failed, tc.want)
		}
	}
}

// TestDialableAddrs: addresses from other nodes are kept only when this
// host can dial them (docs/spec-decisions.md, ## mesh performance).
func TestDialableAddrs(t *testing.T) {
	id := randomPeer(t)
	for _, tc := range []struct {
		addr     string
		loopback bool // the local host listens on loopback only
		want     bool
	}{
		{"/ip4/192.0.2.7/udp/9485/quic-v1", false, true},
		{"/ip6/2001:db8::7/tcp/9485", false, true},
		// IPv4 link-local (169.254/16): one link at best.
		{"/ip4/169.254.10.1/udp/9485/quic-v1", false, false},
		{"/ip4/169.254.10.1/udp/9485/quic-v1", true, false},
		// IPv6 link-local, with and without a zone.
		{"/ip6/fe80::1/udp/9485/quic-v1", false, false},
		{"/ip6zone/eth0/ip6/fe80::1/tcp/9485", true, false},
		// Unspecified names no host.
		{"/ip4/0.0.0.0/tcp/9485", true, false},
		// Loopback names the dialler itself, unless the mesh is local.
		{"/ip4/127.0.0.1/udp/9485/quic-v1", false, false},
		{"/ip6/::1/tcp/9485", false, false},
		{"/ip4/127.0.0.1/udp/9485/quic-v1", true, true},
	} {
		_, ok := parseDialAddr(tc.addr, id, tc.loopback)
		if ok != tc.want {
			t.Errorf("parseDialAddr(%s, loopback=%v) = %v, want %v", tc.addr, tc.loopback, ok, tc.want)
		}
		kept := dialable([]peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(tc.addr)}}}, tc.loopback)
		if (len(kept) == 1) != tc.want {
			t.Errorf("dialable(%s, loopback=%v) kept %v, want %v", tc.addr, tc.loopback, kept, tc.want)
		}
	}
	// ParseP2PExtension drops link-local for everyone and leaves loopback
	// to the mesh, which knows where it listens.
	raw := `{"peer_id":"` + id.String() + `","addrs":["/ip6/fe80::1/udp/1/quic-v1","/ip4/169.254.1.1/tcp/1","/ip4/127.0.0.1/tcp/1","/ip4/192.0.2.1/tcp/1"]}`
	idNode, _ := NodeIDOf(id)
	info, err := ParseP2PExtension(idNode, []byte(raw))
	if err != nil || len(info.Addrs) != 2 {
		t.Fatalf("parse: %v %v", info, err)
	}
	only := `{"peer_id":"` + id.String() + `","addrs":["/ip6/fe80::1/udp/1/quic-v1","/ip4/169.254.1.1/tcp/1"]}`
	if _, err := ParseP2PExtension(idNode, []byte(only)); !errors.Is(err, ErrBadP2PExtension) {
		t.Fatalf("link-local only: %v", err)
	}
}

// TestAddBootstrapPeersDropsUndialable: a mesh off loopback refuses a
// directory entry's loopback and link-local addresses; a loopback mesh
// (this test's) keeps loopback ones.
func TestAddBootstrapPeersDropsUndialable(t *testing.T) {
	n := startNode(t, newTestHost(t, false), testConfig("n", false))
	if !n.m.loopback {
		t.Fatal("a host listening on 127.0.0.1 only is a loopback mesh")
	}
	id := randomPeer(t)
	lo := ma.StringCast("/ip4/127.0.0.1/udp/1/quic-v1")
	ll := ma.StringCast("/ip6/fe80::1/udp/1/quic-v1")
	n.m.AddBootstrapPeers([]peer.AddrInfo{{ID: id, Addrs: []ma.Multiaddr{lo, ll}}})
	got := n.m.bootstrapPeers()
	if len(got) != 1 || len(got[0].Addrs) != 1 || !got[0].Addrs[0].Equal(lo) {
		t.Fatalf("loopback mesh bootstrap peers %v", got)
	}
	n.m.loopback = false // as on a host listening on 0.0.0.0
	other := randomPeer(t)
	n.m.AddBootstrapPeers([]peer.AddrInfo{{ID: other, Addrs: []ma.Multiaddr{lo, ll}}})
	if len(n.m.bootstrapPeers()) != 1 {
		t.Fatalf("a peer with only undialable addresses was added: %v", n.m.bootstrapPeers())
	}
}

// TestAdvertOnPeerJoin: a peer joining the topic gets a fresh advert at
// once, not at the next scheduled one. The schedule is pushed out of reach
// (AdvertInterval 1 h: the first warm-up advert would come after 7.5 min,
// the periodic one after 15), so an advert inside the bounded wait can only
// be the join advert; no wall-clock time is asserted.
func TestAdvertOnPeerJoin(t *testing.T) {
	cfg := testConfig("server", true)
	cfg.AdvertInterval = time.Hour
	cfg.PeerTTL = 3 * time.Hour
	server := startNode(t, newTestHost(t, false), cfg)
	waitFor(t, 30*time.Second, "start-up advert", func() bool { return server.m.Stats()["advert_published"] >= 1 })
	seq := server.m.seq.Load()

	observer := startNode(t, newTestHost(t, false), testConfig("observer", false))
	observer.m.AddBootstrapPeers([]peer.AddrInfo{{ID: server.h.ID(), Addrs: server.h.Addrs()}})
	waitFor(t, 60*time.Second, "advert after the join", func() bool {
		got, ok := observer.m.table.advertSeq(server.h.ID())
		return ok && got > seq
	})
}

// TestBucketTake: the join-advert bucket gives its burst at once, then one
// token per 1/rate.
func TestBucketTake(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := bucket{tokens: 3, last: t0}
	for i := range 3 {
		if !b.take(t0, 0.5, 3) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.take(t0.Add(time.Second), 0.5, 3) {
		t.Fatal("token granted before refill (one per 2 s)")
	}
	if !b.take(t0.Add(2*time.Second), 0.5, 3) {
		t.Fatal("refilled token refused")
	}
	// A long silence refills to the burst, never beyond.
	later := t0.Add(time.Hour)
	for i := range 3 {
		if !b.take(later, 0.5, 3) {
			t.Fatalf("token %d after a long pause refused", i)
		}
	}
	if b.take(later, 0.5, 3) {
		t.Fatal("bucket held more than its burst")
	}
}
