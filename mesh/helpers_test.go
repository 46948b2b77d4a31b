package mesh

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

const testIntent = wire.IntentChat

// testEngine is a small real engine: it echoes the payload as the result,
// or answers with a configured error code, or blocks until released.
type testEngine struct {
	name  string
	fail  atomic.Pointer[wire.Code]
	block chan struct{} // nil: never blocks
	calls atomic.Int64
	// lastCaller records the caller of the last call.
	mu         sync.Mutex
	lastCaller wire.Caller
}

func (e *testEngine) Execute(ctx context.Context, call *wire.Call, caller wire.Caller) *wire.Response {
	e.calls.Add(1)
	e.mu.Lock()
	e.lastCaller = caller
	e.mu.Unlock()
	if e.block != nil {
		select {
		case <-e.block:
		case <-ctx.Done():
			return errorResponse(call.TaskID, wire.NewError(wire.CodeTaskTimeout, "cancelled"))
		}
	}
	if c := e.fail.Load(); c != nil {
		return errorResponse(call.TaskID, wire.NewError(*c, "configured failure"))
	}
	return &wire.Response{TaskID: call.TaskID, Status: wire.StatusSuccess, Result: call.Payload, NodeID: e.name}
}

func (e *testEngine) setFail(c wire.Code) {
	if c == "" {
		e.fail.Store(nil)
		return
	}
	e.fail.Store(&c)
}

func (e *testEngine) caller() wire.Caller {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastCaller
}

// testConfig is a fast mesh configuration for loopback tests. name only
// labels the call site: the node_id is the host key's (New derives it).
func testConfig(_ string, serves bool) Config {
	cfg := Config{
		MaxConcurrent:    8,
		AdvertInterval:   400 * time.Millisecond,
		MinAdvertGap:     50 * time.Millisecond,
		LoadPollInterval: 50 * time.Millisecond,
		PeerTTL:          10 * time.Second,
		AdvertRate:       50,
		AdvertBurst:      50,
		ProvideRetry:     200 * time.Millisecond,
		RTTInterval:      time.Second,
		RTTTimeout:       time.Second,
		DHTFindTimeout:   time.Second,
		DialTimeout:      2 * time.Second,
		RetryBase:        20 * time.Millisecond,
		BreakerOpenFor:   300 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
	}
	if serves {
		cfg.Capabilities = []wire.Capability{{Intent: testIntent, Models: []string{"echo-1"}}}
	}
	return cfg
}

// newTestHost builds a real host on loopback, QUIC or TCP, port 0, no NAT.
func newTestHost(t testing.TB, tcp bool) host.Host {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	addr := "/ip4/127.0.0.1/udp/0/quic-v1"
	if tcp {
		addr = "/ip4/127.0.0.1/tcp/0"
	}
	h, err := NewHost(context.Background(), priv, HostConfig{ListenAddrs: []string{addr}, ConnLow: 100, ConnHigh: 200})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// testNode is one running mesh node.
type testNode struct {
	h      host.Host
	m      *Mesh
	engine *testEngine
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop ends Serve and closes the host, as a crash-free shutdown would.
func (n *testNode) stop(t testing.TB) {
	t.Helper()
	n.once.Do(func() { n.shutdown(t) })
}

func (n *testNode) shutdown(t testing.TB) {
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("serve did not return")
	}
	_ = n.h.Close()
}

func startNode(t testing.TB, h host.Host, cfg Config, opts ...Option) *testNode {
	t.Helper()
	own, err := NodeIDOf(h.ID())
	if err != nil {
		t.Fatal(err)
	}
	eng := &testEngine{name: own}
	var engine TaskEngine
	if len(cfg.Capabilities) > 0 {
		engine = eng
	}
	m, err := New(h, cfg, engine, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{h: h, m: m, engine: eng, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Serve(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// startCluster starts n nodes; node 0 is the bootstrap peer the others
// learn as if from the directory. serves(i) says whether node i serves.
func startCluster(t testing.TB, n int, tcp bool, serves func(int) bool) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range n {
		h := newTestHost(t, tcp)
		nodes[i] = startNode(t, h, testConfig(nodeName(i), serves(i)))
	}
	boot := []peer.AddrInfo{{ID: nodes[0].h.ID(), Addrs: nodes[0].h.Addrs()}}
	for _, nd := range nodes[1:] {
		nd.m.AddBootstrapPeers(boot)
	}
	return nodes
}

func nodeName(i int) string { return "node-" + string(rune('a'+i%26)) + string(rune('0'+i/26)) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allServersKnown reports whether every node has an advert from every
// other serving node.
func allServersKnown(nodes []*testNode, serves func(int) bool) bool {
	for i, a := range nodes {
		for j, b := range nodes {
			if i == j || !serves(j) {
				continue
			}
			if _, ok := a.m.table.advertSeq(b.h.ID()); !ok {
				return false
			}
		}
	}
	return true
}

func testCall() *wire.Call {
	return &wire.Call{
		TaskID:      newUUID(),
		Intent:      testIntent,
		Payload:     json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000},
	}
}

var errTest = errors.New("test")

// sameJSON compares two JSON documents by value (the native codec
// re-encodes results deterministically, reordering object members).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
