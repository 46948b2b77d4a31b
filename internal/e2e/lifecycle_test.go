package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// lifecycleMesh is a directory and two `meshnode up` nodes on a mesh:
// node 1's backend serves other-model, node 2's slow-model one token per
// 10 ms.
type lifecycleMesh struct {
	bin, dirURL  string
	homes        []string
	procs        []*proc
	own, remote  *testutil.SlowLLM
	tok1, tok2   string
	node2ID      string
	node2Summary wire.NodeSummary
	gateway      string // node 1's mesh multiaddr
	node2Addr    string
}

func startLifecycleMesh(t *testing.T) *lifecycleMesh {
	t.Helper()
	lm := &lifecycleMesh{bin: buildBinary(t)}
	lm.own = testutil.NewSlowLLM("other-model", 3, time.Millisecond)
	lm.remote = testutil.NewSlowLLM("slow-model", 40, 10*time.Millisecond)
	ownSrv, remoteSrv := httptest.NewServer(lm.own.Handler()), httptest.NewServer(lm.remote.Handler())
	t.Cleanup(ownSrv.Close)
	t.Cleanup(remoteSrv.Close)
	base := t.TempDir()
	lm.homes = []string{filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")}
	for _, h := range lm.homes {
		writeTestConfig(t, h)
	}
	dir := start(t, "directory", lm.bin, "--home", lm.homes[0], "directory", "--dev", "--listen", "127.0.0.1:0")
	lm.dirURL = directoryURL(t, dir)
	args := func(home, backend string) []string {
		return []string{"--home", home, "up", "--dev", "--directory", lm.dirURL, "--backend", backend,
			"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mcp"}
	}
	n1 := start(t, "node1", lm.bin, args(lm.homes[1], ownSrv.URL)...)
	n2 := start(t, "node2", lm.bin, args(lm.homes[2], remoteSrv.URL)...)
	lm.procs = []*proc{dir, n1, n2}
	rt1, rt2 := runtimeOf(t, n1, lm.homes[1]), runtimeOf(t, n2, lm.homes[2])
	if len(rt1.P2PAddrs) == 0 || len(rt2.P2PAddrs) == 0 {
		t.Fatalf("no mesh addresses: %v %v", rt1.P2PAddrs, rt2.P2PAddrs)
	}
	lm.gateway, lm.node2Addr, lm.node2ID = rt1.P2PAddrs[0], rt2.P2PAddrs[0], rt2.NodeID
	lm.tok1, lm.tok2 = nodeToken(t, lm.bin, lm.homes[1]), nodeToken(t, lm.bin, lm.homes[2])
	eventually(t, 30*time.Second, "node 1 to learn node 2's slow-model on the mesh", func() bool {
		for _, p := range peers(t, lm.bin, lm.homes[1]) {
			if slices.Contains(p.Models, "slow-model") {
				return true
			}
		}
		return false
	})
	eventually(t, 15*time.Second, "node 2 listed by the directory", func() bool {
		lm.node2Summary = summaryOf(t, lm.dirURL, lm.node2ID)
		return lm.node2Summary.NodeID != ""
	})
	return lm
}

func nodeToken(t *testing.T, bin, home string) string {
	t.Helper()
	var tok string
	eventually(t, 20*time.Second, "meshnode token", func() bool {
		out, code := run(t, bin, 10*time.Second, "--home", home, "token")
		tok = strings.TrimSpace(out)
		return code == 0 && tok != ""
	})
	return tok
}

// summaryOf is node id's discover entry (endpoint, IICP-CX key).
func summaryOf(t *testing.T, dirURL, id string) wire.NodeSummary {
	t.Helper()
	resp, err := plainClient.Get(dirURL + "/v1/discover?intent=" + wire.IntentChat + "&limit=50")
	if err != nil {
		return wire.NodeSummary{}
	}
	defer resp.Body.Close()
	var nl wire.NodeList
	if b, _ := io.ReadAll(resp.Body); json.Unmarshal(b, &nl) != nil {
		return wire.NodeSummary{}
	}
	for _, n := range nl.Nodes {
		if n.NodeID == id {
			return n
		}
	}
	return wire.NodeSummary{}
}

type fixedFinder []route.Target

func (f fixedFinder) Find(context.Context, route.Query) ([]route.Target, error) { return f, nil }

// textCollector gathers streamed chat text; cut runs once after `after` chunks.
type textCollector struct {
	mu    sync.Mutex
	text  strings.Builder
	n     int
	after int
	cut   func()
}

func (c *textCollector) chunk(b json.RawMessage) error {
	var v struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range v.Choices {
		c.text.WriteString(ch.Delta.Content)
	}
	if c.n++; c.n == c.after && c.cut != nil {
		go c.cut()
	}
	return nil
}

func (c *textCollector) String() string { c.mu.Lock(); defer c.mu.Unlock(); return c.text.String() }

// TestE2E_LifecycleResumeAndGateway (issue 15 items 2 and 4): a
// directory and two `meshnode up` processes.
//
//   - LIFECYCLE-09 over the HTTP bridge: a streamed call to node 2 whose
//     event-stream connection is dropped after a few events is resumed
//     (the same CALL with Last-Event-ID): every token arrives exactly
//     once, from one backend generation.
//   - LIFECYCLE-09 over the mesh: a libp2p caller of the test's own whose
//     connection to node 2 is closed mid-answer resumes on a new stream
//     (HEADERS resume_after), same result.
//   - A Go program with no node (examples/gocall -bootstrap) reaches the
//     mesh through node 1 and streams slow-model's answer from node 2;
//     without node 1's token, or with another node's, it is refused
//     (unauthorized) and nothing runs.
func TestE2E_LifecycleResumeAndGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	lm := startLifecycleMesh(t)
	example := buildExample(t)
	t.Run("LIFECYCLE-09-http", func(t *testing.T) { checkResumeHTTP(t, lm) })
	t.Run("LIFECYCLE-09-mesh", func(t *testing.T) { checkResumeMesh(t, lm) })
	t.Run("gocall-bootstrap", func(t *testing.T) { checkGatewayClient(t, lm, example) })
	for _, p := range lm.procs {
		if out := p.stdout() + p.stderr(); strings.Contains(out, "tell me a story") || strings.Contains(out, lm.tok1) || strings.Contains(out, lm.tok2) {
			t.Fatalf("%s logged the prompt or a token", p.name)
		}
	}
}

func storyCall(t *testing.T, token string) *wire.Call {
	t.Helper()
	call, err := route.NewTask(wire.IntentChat, map[string]any{"messages": []map[string]string{{"role": "user", "content": "tell me a story"}}}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	call.Model = "slow-model"
	call.Auth = &wire.Auth{NodeToken: token}
	return call
}

func checkResumeHTTP(t *testing.T, lm *lifecycleMesh) {
	before := lm.remote.Started()
	cut := &cutOnce{after: 4 * 6, base: &http.Transport{DisableKeepAlives: true}}
	r, err := route.New([]route.Finder{fixedFinder{{Path: route.PathHTTP, NodeID: lm.node2ID, Node: lm.node2Summary}}},
		route.WithTransport(route.PathHTTP, route.HTTPTransport{HTTP: &http.Client{Transport: cut}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var col textCollector
	res, err := r.CallStream(ctx, storyCall(t, lm.tok2), route.Query{}, col.chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if !cut.done.Load() || res.Resumes < 1 || !res.Encrypted || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("cut %v, resumes %d, encrypted %v, terminal %+v", cut.done.Load(), res.Resumes, res.Encrypted, res.Response.Lifecycle)
	}
	if col.String() != lm.remote.Text() || lm.remote.Started() != before+1 || lm.remote.Cancelled() != 0 {
		t.Fatalf("text %q (want %q); generations %d, cancelled %d", col.String(), lm.remote.Text(), lm.remote.Started()-before, lm.remote.Cancelled())
	}
}

// cutOnce drops the first event stream's connection after `after` lines.
type cutOnce struct {
	after int
	base  http.RoundTripper
	done  atomic.Bool
}

func (c *cutOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil && resp.Header.Get("Content-Type") == httpapi.MediaEventStream && c.done.CompareAndSwap(false, true) {
		resp.Body = &cutBody{rc: resp.Body, left: c.after}
	}
	return resp, err
}

type cutBody struct {
	rc   io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		_ = b.rc.Close() // the connection goes with it
		return 0, errors.New("connection cut by the test")
	}
	n, err := b.rc.Read(p)
	b.left -= strings.Count(string(p[:n]), "\n")
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

func checkResumeMesh(t *testing.T, lm *lifecycleMesh) {
	before := lm.remote.Started()
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := mesh.NewHost(ctx, priv, mesh.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: 4, ConnHigh: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m, err := mesh.New(h, mesh.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := ma.NewMultiaddr(lm.node2Addr)
	if err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	r, err := route.New([]route.Finder{fixedFinder{{Path: route.PathMesh, NodeID: lm.node2ID, PeerID: ai.ID.String(), Peer: mesh.PeerInfo{PeerID: ai.ID}}}},
		route.WithTransport(route.PathMesh, route.MeshTransport{M: m}))
	if err != nil {
		t.Fatal(err)
	}
	col := textCollector{after: 5, cut: func() { _ = h.Network().ClosePeer(ai.ID) }}
	res, err := r.CallStream(ctx, storyCall(t, lm.tok2), route.Query{}, col.chunk)
	if err != nil {
		t.Fatalf("CallStream: %v", err)
	}
	if res.Resumes < 1 || res.Path != route.PathMesh || res.Response.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("resumes %d, path %s, terminal %+v", res.Resumes, res.Path, res.Response.Lifecycle)
	}
	if col.String() != lm.remote.Text() || lm.remote.Started() != before+1 || lm.remote.Cancelled() != 0 {
		t.Fatalf("text %q (want %q); generations %d, cancelled %d", col.String(), lm.remote.Text(), lm.remote.Started()-before, lm.remote.Cancelled())
	}
}

func checkGatewayClient(t *testing.T, lm *lifecycleMesh, example string) {
	before := lm.remote.Started()
	out, errOut, code := runExample(t, example, lm.tok1, "-bootstrap", lm.gateway, "-stream", "-model", "slow-model", "tell me a story")
	if code != 0 || strings.TrimSpace(out) != strings.TrimSpace(lm.remote.Text()) {
		t.Fatalf("gocall -bootstrap: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "served by node "+lm.node2ID+" over gateway") || lm.own.Started() != 0 || lm.remote.Started() != before+1 {
		t.Fatalf("stderr %q; node 1's backend ran %d times, node 2's %d", errOut, lm.own.Started(), lm.remote.Started()-before)
	}
	// The example refuses to start without a token; another node's token
	// reaches the gateway, which refuses it.
	out, errOut, code = runExample(t, example, "", "-bootstrap", lm.gateway, "-model", "slow-model", "tell me a story")
	if code != 1 || out != "" || !strings.Contains(errOut, "needs NodeToken") {
		t.Fatalf("no token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runExample(t, example, lm.tok2, "-bootstrap", lm.gateway, "-model", "slow-model", "tell me a story")
	if code != 1 || out != "" || !strings.Contains(errOut, "unauthorized") {
		t.Fatalf("another node's token: exit %d, stdout %q, stderr %q; want unauthorized", code, out, errOut)
	}
	// An attacker's own libp2p host speaking the gateway protocol with no
	// token, or a forged one, is refused before anything is routed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := mesh.DialGateway(ctx, lm.gateway, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, auth := range []*wire.Auth{nil, {NodeToken: strings.Repeat("0", 64)}} {
		call := storyCall(t, "")
		call.Auth = auth
		resp, err := g.Call(ctx, call, nil)
		if err != nil || resp.Error == nil || resp.Error.Code != wire.CodeUnauthorized {
			t.Fatalf("gateway without the node's token: %+v %v", resp, err)
		}
	}
	if lm.remote.Started() != before+1 || lm.own.Started() != 0 {
		t.Fatal("a refused gateway task ran")
	}
}
