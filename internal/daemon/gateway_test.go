package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// seenAuth is a real engine that records the credentials each CALL
// arrived with.
type seenAuth struct {
	*node.Engine
	mu   sync.Mutex
	auth []*wire.Auth
}

func (s *seenAuth) ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller, emit func(wire.Lifecycle, json.RawMessage) error) *wire.Response {
	s.mu.Lock()
	s.auth = append(s.auth, call.Auth)
	s.mu.Unlock()
	return s.Engine.ExecuteStream(ctx, call, caller, emit)
}

func meshOn(t *testing.T, eng mesh.TaskEngine, caps []wire.Capability) (*mesh.Mesh, peer.AddrInfo) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := mesh.NewHost(context.Background(), priv, mesh.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: 4, ConnHigh: 16})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mesh.New(h, mesh.Config{Capabilities: caps}, eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = h.Close() })
	return m, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// TestGatewayStripsTokenAndStreams: the gateway engine refuses a CALL
// without this node's token, and routes one with it — streamed, with its
// own sequence — to the serving node without the token (it never leaves
// the gateway).
func TestGatewayStripsTokenAndStreams(t *testing.T) {
	llm := testutil.NewSlowLLM("m", 5, time.Millisecond)
	srv := httptest.NewServer(llm.Handler())
	t.Cleanup(srv.Close)
	be, err := backend.NewOpenAI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: be, Models: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := node.New(node.Config{MaxConcurrent: 2}, rt, node.WithOpenMode(), node.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	serving := &seenAuth{Engine: eng}
	_, servingPeer := meshOn(t, serving, rt.Capabilities())
	gwMesh, _ := meshOn(t, nil, nil)
	if err := gwMesh.Host().Connect(context.Background(), servingPeer); err != nil {
		t.Fatal(err)
	}
	r, err := route.New([]route.Finder{fixedTargets{{Path: route.PathMesh, PeerID: servingPeer.ID.String(), Peer: mesh.PeerInfo{PeerID: servingPeer.ID}}}},
		route.WithTransport(route.PathMesh, route.MeshTransport{M: gwMesh}))
	if err != nil {
		t.Fatal(err)
	}
	g := gatewayEngine{d: &daemon{operatorToken: "operator-secret", log: slog.New(slog.DiscardHandler)}, r: r}

	call := &wire.Call{TaskID: "0b7e3f5a-1d2c-4e8f-9a6b-3c5d7e9f1a2b", Intent: wire.IntentChat,
		Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`), Constraints: wire.Constraints{TimeoutMs: 5000}}
	for _, auth := range []*wire.Auth{nil, {NodeToken: "guess"}} {
		call.Auth = auth
		if resp := g.ExecuteStream(context.Background(), call, wire.Caller{}, func(wire.Lifecycle, json.RawMessage) error { return nil }); resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized || resp.Lifecycle.Sequence != 0 {
			t.Fatalf("without the token: %+v", resp)
		}
	}
	if llm.Started() != 0 {
		t.Fatal("a refused task ran")
	}
	call.Auth = &wire.Auth{NodeToken: "operator-secret"}
	recv := wire.NewLifecycleReceiver(call.TaskID)
	resp := g.ExecuteStream(context.Background(), call, wire.Caller{}, func(l wire.Lifecycle, _ json.RawMessage) error {
		if v := recv.AcceptEnvelope(&l); v != wire.LifecycleOK {
			t.Errorf("event %+v: %s", l, v)
		}
		return nil
	})
	if resp.Error != nil || recv.AcceptEnvelope(resp.Lifecycle) != wire.LifecycleOK || !recv.Done() {
		t.Fatalf("routed: %+v %+v", resp.Error, resp.Lifecycle)
	}
	serving.mu.Lock()
	defer serving.mu.Unlock()
	if len(serving.auth) != 1 || serving.auth[0] != nil {
		t.Fatalf("the serving node got credentials %+v: the gateway forwarded its token", serving.auth)
	}
}

type fixedTargets []route.Target

func (f fixedTargets) Find(context.Context, route.Query) ([]route.Target, error) { return f, nil }
