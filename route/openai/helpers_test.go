package openai

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const slowModel = "slow-model"

// servingEngine is a real engine (open mode) serving chat, completion and
// embeddings with slowModel on an OpenAI-compatible test backend.
func servingEngine(t testing.TB, nodeID string, llm *testutil.SlowLLM, maxConc int) (*node.Engine, []wire.Capability) {
	t.Helper()
	srv := httptest.NewServer(llm.Handler())
	t.Cleanup(srv.Close)
	be, err := backend.NewOpenAI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := backend.NewRouter(
		backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: be, Models: []string{slowModel}},
		backend.Route{Intent: wire.IntentCompletion, Mode: backend.ModeCompletion, Backend: be, Models: []string{slowModel}},
		backend.Route{Intent: wire.IntentEmbedding, Mode: backend.ModeEmbedding, Backend: be, Models: []string{slowModel}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := node.New(node.Config{NodeID: nodeID, MaxConcurrent: maxConc}, rt,
		node.WithOpenMode(), node.WithRegisterer(prometheus.NewRegistry()), node.WithQoSWait(wire.QoSInteractive, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Wait(ctx)
	})
	return eng, rt.Capabilities()
}

// startMesh runs a real mesh node on loopback QUIC; eng nil serves nothing.
func startMesh(t testing.TB, id *identity.Identity, eng *node.Engine, caps []wire.Capability) (*mesh.Mesh, peer.AddrInfo) {
	t.Helper()
	key, err := id.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := mesh.NewHost(context.Background(), key, mesh.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: 100, ConnHigh: 200})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mesh.Config{NodeID: id.NodeID(), MaxConcurrent: 32, AdvertInterval: 400 * time.Millisecond,
		MinAdvertGap: 50 * time.Millisecond, LoadPollInterval: 50 * time.Millisecond, PeerTTL: 10 * time.Second,
		AdvertRate: 50, AdvertBurst: 50, ProvideRetry: 200 * time.Millisecond, RTTInterval: time.Second,
		RTTTimeout: time.Second, DHTFindTimeout: time.Second, DialTimeout: 2 * time.Second,
		RetryBase: 20 * time.Millisecond, BreakerOpenFor: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	var te mesh.TaskEngine
	if eng != nil {
		te = eng
		cfg.Capabilities = caps
	}
	m, err := mesh.New(h, cfg, te)
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
	return m, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// gatewayFixture is the OpenAI API of a node with no model of its own,
// answered by a mesh peer whose backend generates one token per interval.
type gatewayFixture struct {
	url  string
	llm  *testutil.SlowLLM
	logs *testutil.SyncBuffer
}

func newGateway(t testing.TB, llm *testutil.SlowLLM, maxConc int, opts ...Option) *gatewayFixture {
	t.Helper()
	serverID, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	callerID, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	eng, caps := servingEngine(t, serverID.NodeID(), llm, maxConc)
	_, serverPeer := startMesh(t, serverID, eng, caps)
	caller, _ := startMesh(t, callerID, nil, nil)
	caller.AddBootstrapPeers([]peer.AddrInfo{serverPeer})
	mf := route.MeshFinder{M: caller}
	// The signed advert (not a DHT provider record) carries the models.
	testutil.WaitFor(t, 15*time.Second, "the caller to learn the serving peer's advert", func() bool {
		ms := route.Models(context.Background(), nil, mf)
		return len(ms) == 1 && len(ms[0].Intents) == 3
	})
	r, err := route.New([]route.Finder{mf}, route.WithTransport(route.PathMesh, route.MeshTransport{M: caller}),
		route.WithRetryBase(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	catalog := func(ctx context.Context) []route.Model {
		return route.Models(ctx, []string{wire.IntentChat, wire.IntentCompletion, wire.IntentEmbedding}, mf)
	}
	logs := &testutil.SyncBuffer{}
	all := append([]Option{WithAddr("127.0.0.1:0"), WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))}, opts...)
	s, err := New(r, catalog, all...)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &gatewayFixture{url: hs.URL + "/v1", llm: llm, logs: logs}
}
