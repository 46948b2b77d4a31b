package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testIntent = "urn:iicp:intent:llm:chat:v1"

var quietLog = slog.New(slog.DiscardHandler)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitFor waits up to d for cond and returns how long it took.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, d, what, cond)
}

// gossipNode is a real libp2p host on loopback TCP with GossipSub.
type gossipNode struct {
	h  host.Host
	ps *pubsub.PubSub
}

func newGossipNode(t testing.TB) *gossipNode {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Flood publishing is how production should build the seed's PubSub:
	// the seed is the only publisher, and without it a replica that joined
	// after the first publish waits a heartbeat to enter the fanout.
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		cancel()
		_ = h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = h.Close() })
	return &gossipNode{h: h, ps: ps}
}

// addrs are the host's multiaddrs with /p2p/<id> (a GossipConfig's Peers).
func (g *gossipNode) addrs() []string {
	var out []string
	for _, a := range g.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+g.h.ID().String())
	}
	return out
}

func (g *gossipNode) connect(t testing.TB, other *gossipNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.h.Connect(ctx, peer.AddrInfo{ID: other.h.ID(), Addrs: other.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// swapHandler lets a server exist (and know its URL) before its handler.
type swapHandler struct{ h atomic.Value }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.h.Load().(http.Handler).ServeHTTP(w, r)
}

// seedEnv is a running seed behind a real HTTP server.
type seedEnv struct {
	seed *Seed
	srv  *httptest.Server
	gn   *gossipNode
	mu   sync.Mutex
	reqs []string // path?query of every request, for resume assertions
	// tamper, when set, rewrites /v1/events bodies (forgery tests).
	tamper atomic.Value
}

func newSeedEnv(t testing.TB, gossip bool, mod ...func(*SeedConfig)) *seedEnv {
	t.Helper()
	env := &seedEnv{}
	sw := &swapHandler{}
	env.srv = httptest.NewServer(sw)
	cfg := SeedConfig{DBPath: filepath.Join(t.TempDir(), "seed.db"), Key: newKey(t), PublicURL: env.srv.URL,
		Insecure: true, Logger: quietLog, RegisterPerHour: 100, SnapshotsPerHour: 1000, EventsPerMinute: 100000}
	if gossip {
		env.gn = newGossipNode(t)
		cfg.PubSub = env.gn.ps
	}
	for _, m := range mod {
		m(&cfg)
	}
	seed, err := NewSeed(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.seed = seed
	sw.h.Store(http.Handler(http.HandlerFunc(env.serve)))
	t.Cleanup(env.stop)
	return env
}

func (e *seedEnv) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.reqs = append(e.reqs, r.URL.RequestURI())
	e.mu.Unlock()
	if r.URL.Path == "/v1/events" {
		// Recorded, so a tamper set while a long-poll is held still
		// applies to its answer.
		rec := httptest.NewRecorder()
		e.seed.Handler().ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length") // a tampered body has another length
		w.WriteHeader(rec.Code)
		b := rec.Body.Bytes()
		if f, ok := e.tamper.Load().(func([]byte) []byte); ok && f != nil {
			b = f(b)
		}
		_, _ = w.Write(b)
		return
	}
	e.seed.Handler().ServeHTTP(w, r)
}

var stopOnce sync.Map

// stop shuts the seed down (idempotent): HTTP server, gossip topic, DB.
func (e *seedEnv) stop() {
	if _, done := stopOnce.LoadOrStore(e, true); done {
		return
	}
	e.seed.push.close() // release held long-polls, or Close waits for them
	e.srv.Close()
	_ = e.seed.Close()
}

func (e *seedEnv) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.reqs...)
}

func (e *seedEnv) resetRequests() {
	e.mu.Lock()
	e.reqs = nil
	e.mu.Unlock()
}

// register emits a REGISTER for a node serving testIntent.
func (e *seedEnv) register(t testing.TB, nodeID string) Event {
	t.Helper()
	evs, err := e.seed.Emit(context.Background(), Change{Type: EventRegister, Payload: RegisterPayload{
		NodeID: nodeID, Endpoint: "https://" + nodeID + ".example", Region: "eu-central",
		Capabilities: []wire.Capability{{Intent: testIntent, Models: []string{"m1"}}},
		Limits:       &wire.Limits{MaxConcurrent: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

// replicaEnv is a running replica as production runs it: a
// ReplicaDirectory (a real directory store fed by verified events, its
// discover behind the replica's lag gate and signature) on loopback.
type replicaEnv struct {
	rd     *ReplicaDirectory
	r      *Replica
	url    string
	gn     *gossipNode // the replica directory's own gossip host (gossip on)
	cfg    ReplicaDirectoryConfig
	cancel context.CancelFunc
	done   chan error
}

// newReplicaEnv runs a replica directory of seed with its state in
// stateDir (directory store and replica database); mod edits the
// configuration before it is built.
func newReplicaEnv(t testing.TB, seed *seedEnv, stateDir string, gossip bool, mod ...func(*ReplicaDirectoryConfig)) *replicaEnv {
	t.Helper()
	env := &replicaEnv{done: make(chan error, 1)}
	cfg := ReplicaDirectoryConfig{
		Directory: dirConfig(t, stateDir, 0),
		Options:   []directory.Option{directory.WithLogger(quietLog)},
		Replica: ReplicaConfig{SeedURL: seed.srv.URL, Key: newKey(t), Insecure: true, Logger: quietLog,
			PollInterval: time.Hour, RetryInterval: 20 * time.Millisecond},
	}
	if gossip {
		cfg.Gossip = &GossipConfig{Peers: seed.gn.addrs()}
	}
	for _, m := range mod {
		m(&cfg)
	}
	env.cfg = cfg
	rd, err := NewReplicaDirectory(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Listen(context.Background()); err != nil {
		_ = rd.Close()
		t.Fatal(err)
	}
	env.rd, env.r, env.url = rd, rd.Replica(), rd.URL()
	if rd.gossip != nil {
		env.gn = &gossipNode{h: rd.gossip.Host(), ps: rd.gossip.PubSub()}
	}
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() { env.done <- rd.Serve(ctx) }()
	t.Cleanup(env.stop)
	return env
}

// stop ends Serve, which closes the directory and the replica (idempotent).
func (e *replicaEnv) stop() {
	if _, done := stopOnce.LoadOrStore(e, true); done {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		panic("replica directory Serve: " + err.Error())
	}
}

// discover queries the replica directory's discover route over HTTP and
// verifies the DIR-FED-20 signature against the replica's published key.
func (e *replicaEnv) discover(t testing.TB) (int, wire.NodeList) {
	t.Helper()
	resp, err := http.Get(e.url + "/v1/discover?intent=" + url.QueryEscape(testIntent))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var nl wire.NodeList
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nl
	}
	pub := e.cfg.Replica.Key.Public().(ed25519.PublicKey)
	if err := VerifyResponse(pub, http.MethodGet, "/v1/discover", resp.Request.URL.RawQuery,
		resp.Header.Get(HeaderSnapshotSeq), resp.Header.Get(HeaderReplicaSig), body); err != nil {
		t.Fatalf("replica response signature: %v", err)
	}
	if err := json.Unmarshal(body, &nl); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, nl
}

func hasNode(nl wire.NodeList, id string) bool {
	for _, n := range nl.Nodes {
		if n.NodeID == id {
			return true
		}
	}
	return false
}

func (e *replicaEnv) serves(t testing.TB, id string) bool {
	code, nl := e.discover(t)
	return code == http.StatusOK && hasNode(nl, id)
}

func nodeID(i int) string { return fmt.Sprintf("node-%06d", i) }

// counterValue reads a counter without the testutil package.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// testClock is a settable clock safe to read from server goroutines.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock { c := &testClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *testClock) Now() time.Time       { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration)  { c.ns.Add(int64(d)) }
