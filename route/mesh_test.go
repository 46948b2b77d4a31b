package route

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// recEngine is the serving side behind a real mesh task stream: it records
// the consumer token each CALL arrived with and answers success or a
// configured error.
type recEngine struct {
	fail   atomic.Pointer[wire.Code]
	mu     sync.Mutex
	tokens []string
}

func (e *recEngine) Execute(_ context.Context, call *wire.Call, caller wire.Caller) *wire.Response {
	e.mu.Lock()
	e.tokens = append(e.tokens, caller.ConsumerToken)
	e.mu.Unlock()
	if c := e.fail.Load(); c != nil {
		return &wire.Response{TaskID: call.TaskID, Status: wire.StatusError, Error: wire.NewError(*c, "configured"), Code: *c}
	}
	return &wire.Response{TaskID: call.TaskID, Status: wire.StatusSuccess, Result: call.Payload}
}

func (e *recEngine) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.tokens...)
}

type meshNode struct {
	m      *mesh.Mesh
	nodeID string
	peer   peer.AddrInfo
}

// startMesh runs a real mesh node on loopback QUIC (engine nil: it serves
// nothing), with an identity whose node_id derives from its key.
func startMesh(t *testing.T, engine mesh.TaskEngine) meshNode {
	t.Helper()
	return startMeshServing(t, engine, []wire.Capability{{Intent: wire.IntentChat}})
}

// startMeshServing is startMesh advertising caps when engine is set.
func startMeshServing(t *testing.T, engine mesh.TaskEngine, caps []wire.Capability) meshNode {
	t.Helper()
	id, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return startMeshAs(t, id, engine, caps)
}

// startMeshAs is startMeshServing under a given identity (a serving engine
// must answer under its node_id).
func startMeshAs(t *testing.T, id *identity.Identity, engine mesh.TaskEngine, caps []wire.Capability) meshNode {
	t.Helper()
	key, err := id.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := mesh.NewHost(context.Background(), key, mesh.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: 100, ConnHigh: 200})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mesh.Config{NodeID: id.NodeID(), MaxConcurrent: 8, AdvertInterval: 400 * time.Millisecond,
		MinAdvertGap: 50 * time.Millisecond, LoadPollInterval: 50 * time.Millisecond, PeerTTL: 10 * time.Second,
		AdvertRate: 50, AdvertBurst: 50, ProvideRetry: 200 * time.Millisecond, RTTInterval: time.Second,
		RTTTimeout: time.Second, DHTFindTimeout: time.Second, DialTimeout: 2 * time.Second,
		RetryBase: 20 * time.Millisecond, BreakerOpenFor: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	var eng mesh.TaskEngine
	if engine != nil {
		eng = engine
		cfg.Capabilities = caps
	}
	m, err := mesh.New(h, cfg, eng)
	if err == nil {
		err = m.Start()
	}
	if err != nil {
		_ = h.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("mesh Serve did not return")
		}
		_ = h.Close()
	})
	return meshNode{m: m, nodeID: id.NodeID(), peer: peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}}
}

// The mesh path for real: MeshFinder offers the peer its table learned from
// a signed advert, MeshTransport runs the CALL over a libp2p task stream
// with the token minted for that peer's node_id, a retryable answer moves
// the task on to the next finder's HTTP node (with its own token), a
// success stays on the mesh and names the peer, and a peer no credential
// can be had for is skipped without spending an attempt.
func TestMeshThenHTTPWithPerTargetCredentials(t *testing.T) {
	eng := &recEngine{}
	server := startMesh(t, eng)
	caller := startMesh(t, nil)
	caller.m.AddBootstrapPeers([]peer.AddrInfo{server.peer})
	testutil.WaitFor(t, 15*time.Second, "the caller to learn the server's advert", func() bool { return len(meshTargets(t, caller.m)) > 0 })
	web := newTaskNode(t, ok)
	var refuse atomic.Bool
	cred := WithCredential(func(_ context.Context, tg Target, _ string) (string, error) {
		if tg.Path == PathMesh && refuse.Load() {
			return "", errNoToken
		}
		return "tok-for-" + tg.NodeID, nil
	})
	r := newRouter(t, []Finder{MeshFinder{M: caller.m}, finder(web.target("web"))},
		WithTransport(PathMesh, MeshTransport{M: caller.m}), cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	unavailable := wire.CodeUnavailable
	eng.fail.Store(&unavailable)
	res, err := r.Call(ctx, testCall(), Query{})
	if err != nil || res.Path != PathHTTP || res.NodeID != "web" || len(res.Tried) != 2 ||
		res.Tried[0].Path != PathMesh || res.Tried[0].PeerID != server.peer.ID.String() || res.Tried[0].Code != wire.CodeUnavailable {
		t.Fatalf("mesh failure then http: res %+v err %v", res, err)
	}
	if got := eng.seen(); len(got) != 1 || got[0] != "tok-for-"+server.nodeID || web.tokens[0] != "tok-for-web" {
		t.Fatalf("tokens: mesh peer got %v, http node got %v", got, web.tokens)
	}

	eng.fail.Store(nil)
	res, err = r.Call(ctx, testCall(), Query{})
	if err != nil || res.Path != PathMesh || res.PeerID != server.peer.ID.String() || res.NodeID != server.nodeID || web.count() != 1 {
		t.Fatalf("mesh success: res %+v err %v, http node called %d times", res, err, web.count())
	}

	refuse.Store(true)
	res, err = r.Call(ctx, testCall(), Query{})
	if err != nil || res.Path != PathHTTP || res.Attempts != 1 || len(eng.seen()) != 2 {
		t.Fatalf("no credential for the peer: res %+v err %v, peer called %d times", res, err, len(eng.seen()))
	}
}

var errNoToken = errors.New("no directory issues a token for this peer")

func meshTargets(t *testing.T, m *mesh.Mesh) []Target {
	t.Helper()
	ts, err := MeshFinder{M: m}.Find(context.Background(), Query{Intent: wire.IntentChat})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// A pinned model no mesh peer serves is IICP-E029 naming the models peers
// do offer, not "no node serves the intent"; an echo-only mesh peer is
// marked so the router tries it last.
func TestRoute_UnknownModelAndEchoPeer(t *testing.T) {
	server := startMeshServing(t, &recEngine{}, []wire.Capability{{Intent: wire.IntentChat, Models: []string{"llama3", wire.EchoModel}}})
	echo := startMeshServing(t, &recEngine{}, []wire.Capability{{Intent: wire.IntentChat, Models: []string{wire.EchoModel}}})
	caller := startMesh(t, nil)
	caller.m.AddBootstrapPeers([]peer.AddrInfo{server.peer, echo.peer})
	testutil.WaitFor(t, 15*time.Second, "the caller to learn both adverts", func() bool {
		n := 0
		for _, tg := range meshTargets(t, caller.m) {
			if tg.Peer.Seq > 0 {
				n++
			}
		}
		return n == 2
	})
	for _, tg := range meshTargets(t, caller.m) {
		if tg.Echo != (tg.NodeID == echo.nodeID) || tg.Score <= 0 {
			t.Fatalf("target %s (echo node %s): echo %v score %v caps %+v", tg.NodeID, echo.nodeID, tg.Echo, tg.Score, tg.Peer.Caps)
		}
	}
	_, err := MeshFinder{M: caller.m}.Find(context.Background(), Query{Intent: wire.IntentChat, Model: "gpt-9"})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE029 || !strings.Contains(werr.Message, "llama3") {
		t.Fatalf("unknown model: %v", err)
	}
}
