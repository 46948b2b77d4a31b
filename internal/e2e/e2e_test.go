package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
)

// testBackend is an OpenAI-compatible server: GET /v1/models and
// POST /v1/chat/completions answering "backend says: <prompt>".
func testBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(backendHandler(&calls))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// backendHandler is testBackend's handler, counting chat completions.
func backendHandler(calls *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/models":
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"e2e-model","object":"model"}]}`))
		case "/v1/chat/completions":
			calls.Add(1)
			var req struct {
				Model    string `json:"model"`
				Messages []struct {
					Content string `json:"content"`
				} `json:"messages"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			last := ""
			if n := len(req.Messages); n > 0 {
				last = req.Messages[n-1].Content
			}
			_ = json.NewEncoder(w).Encode(map[string]any{
				"id": "c1", "object": "chat.completion", "model": req.Model,
				"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
					"message": map[string]string{"role": "assistant", "content": "backend says: " + last}}},
				"usage": map[string]int{"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
			})
		default:
			http.NotFound(w, r)
		}
	}
}

// TestEndToEnd runs a directory and three nodes as real processes: a call is
// served, two mesh nodes learn each other's adverts and a call between them
// takes the mesh path, a node without the mesh falls back to HTTP with the
// payload sealed by IICP-CX, heartbeats keep nodes discoverable past the expiry window,
// a killed node leaves discover within that window, a restarted directory
// keeps the surviving registration, and SIGTERM deregisters and exits 0.
// Conformance: NODE-REG-01/02, DIR-HB-04, IICP-E2E-01, DIR-LIFECYCLE-06.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	start0 := time.Now()
	c := startCluster(t)
	c.checkDiscovery(t)
	c.checkCalls(t)
	c.checkHTTPFallbackWithCX(t)
	c.checkDirectCallUnauthorizedIsFinal(t)
	st := c.checkHeartbeats(t)
	c.checkKilledNodeExpires(t)
	c.checkDirectoryRestart(t, st)
	c.checkGracefulShutdown(t)
	t.Logf("end-to-end run took %v", time.Since(start0).Round(time.Millisecond))
}

// cluster is the processes TestEndToEnd's phases share: a seed directory
// and its replica, two mesh nodes and one node without the mesh.
type cluster struct {
	bin            string
	backendCalls   *atomic.Int64
	dirHome        string
	homes          [3]string // node 1, node 2 (mesh), node 3 (--no-mesh)
	dir            *proc
	nodes          [3]*proc
	rts            [3]admin.Runtime
	dirURL, repURL string
}

// startCluster starts the directory (a Genesis Seed, the default, gossiping
// its event log), a replica following it (`meshnode directory --seed`),
// two mesh nodes and a node without the mesh, whose calls take the HTTP path.
func startCluster(t *testing.T) *cluster {
	c := &cluster{bin: buildBinary(t)}
	backend, calls := testBackend(t)
	c.backendCalls = calls
	base := t.TempDir()
	c.dirHome = filepath.Join(base, "dir")
	repHome := filepath.Join(base, "replica")
	c.homes = [3]string{filepath.Join(base, "n1"), filepath.Join(base, "n2"), filepath.Join(base, "n3")}
	for _, h := range append([]string{c.dirHome, repHome}, c.homes[:]...) {
		writeTestConfig(t, h)
	}
	c.dir = start(t, "directory", c.bin, "--home", c.dirHome, "directory", "--dev", "--listen", "127.0.0.1:0",
		"--p2p", "/ip4/127.0.0.1/udp/0/quic-v1")
	c.dirURL = directoryURL(t, c.dir)
	rep := start(t, "replica", c.bin, "--home", repHome, "directory", "--dev", "--listen", "127.0.0.1:0",
		"--seed", c.dirURL, "--gossip-peer", gossipAddr(t, c.dir))
	c.repURL = directoryURL(t, rep)
	nodeArgs := []string{"up", "--dev", "--directory", c.dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0"}
	mesh := []string{"--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.nodes[0] = start(t, "node1", c.bin, slices.Concat([]string{"--home", c.homes[0]}, nodeArgs, mesh)...)
	c.nodes[1] = start(t, "node2", c.bin, slices.Concat([]string{"--home", c.homes[1]}, nodeArgs, mesh)...)
	c.nodes[2] = start(t, "node3 (no mesh)", c.bin, slices.Concat([]string{"--home", c.homes[2]}, nodeArgs, []string{"--no-mesh"})...)
	for i := range c.nodes {
		c.rts[i] = runtimeOf(t, c.nodes[i], c.homes[i])
	}
	if out := c.nodes[0].stdout(); !strings.Contains(out, c.rts[0].NodeID) || !strings.Contains(out, "peer ID") {
		t.Fatalf("start-up block lacks node/peer ID:\n%s", out)
	}
	return c
}

// checkDiscovery: NODE-REG-01, both mesh nodes appear in discover after
// start; DIR-FED-01, the replica serves the seed's registrations from the
// verified log, pushed by gossip.
func (c *cluster) checkDiscovery(t *testing.T) {
	for _, u := range []string{c.dirURL, c.repURL} {
		eventually(t, 10*time.Second, "both nodes discoverable at "+u, func() bool {
			d := discover(t, u)
			return d[c.rts[0].NodeID] && d[c.rts[1].NodeID]
		})
	}
}

// checkCalls: a task through node 1's admin endpoint is served by the
// backend; the two mesh nodes learn each other's adverts (peer table,
// `meshnode peers`), and a call through node 1 takes the mesh path to node
// 2, the only other mesh node.
func (c *cluster) checkCalls(t *testing.T) {
	out, code := run(t, c.bin, 30*time.Second, "--home", c.homes[0], "call", "hello mesh")
	if code != 0 || strings.TrimSpace(out) != "backend says: hello mesh" {
		t.Fatalf("call: exit %d, output %q", code, out)
	}
	if c.backendCalls.Load() < 1 {
		t.Fatal("backend never called")
	}
	rt2 := c.rts[1]
	eventually(t, 10*time.Second, "node 1 to know node 2 on the mesh", func() bool {
		ps := peers(t, c.bin, c.homes[0])
		return len(ps) == 1 && ps[0].PeerID == rt2.PeerID && ps[0].NodeID == rt2.NodeID && len(ps[0].Intents) > 0
	})
	res := callJSON(t, c.bin, c.homes[0], "which path")
	if res.Path != admin.PathMesh || res.PeerID != rt2.PeerID || res.NodeID != rt2.NodeID {
		t.Fatalf("call between mesh nodes: path %q peer %s node %s, want mesh via %s", res.Path, res.PeerID, res.NodeID, rt2.PeerID)
	}
	if txt, _ := run(t, c.bin, 10*time.Second, "--home", c.homes[0], "peers"); !strings.Contains(txt, "LAST SEEN") || !strings.Contains(txt, "llm:chat:v1") {
		t.Fatalf("peers table:\n%s", txt)
	}
}

// checkHTTPFallbackWithCX: without the mesh the call goes through directory
// discover and POST /v1/task, the payload sealed with IICP-CX to the chosen
// node's advertised key; that node opened it.
func (c *cluster) checkHTTPFallbackWithCX(t *testing.T) {
	res := callJSON(t, c.bin, c.homes[2], "which path")
	if res.Path != admin.PathHTTP || !res.Encrypted {
		t.Fatalf("call without mesh: path %q encrypted %v, want an encrypted http call", res.Path, res.Encrypted)
	}
	i := slices.IndexFunc(c.rts[:], func(rt admin.Runtime) bool { return rt.NodeID == res.NodeID })
	if i < 0 {
		t.Fatalf("http call served by unknown node %s", res.NodeID)
	}
	if st := status(t, c.bin, c.homes[i]); st == nil || st.CX.Opened < 1 || st.CX.KeyID == "" {
		t.Fatalf("serving node's CX status %+v, want a sealed task opened", st)
	}
}

// checkDirectCallUnauthorizedIsFinal: `meshnode call --directory` from a
// home with no node goes through the same router as the daemon (discover,
// POST /v1/task sealed with IICP-CX). Without an operator token or consumer
// token the chosen node answers 401, and a 401 is final (iicp-semantics.md
// §6.1 "SHOULD NOT retry"): one attempt although three nodes serve the
// intent, the node's answer printed, exit code 5, no backend call.
func (c *cluster) checkDirectCallUnauthorizedIsFinal(t *testing.T) {
	before := c.backendCalls.Load()
	home := filepath.Join(t.TempDir(), "caller")
	writeTestConfig(t, home)
	out, code := run(t, c.bin, 30*time.Second, "--home", home, "call", "--json", "--directory", c.dirURL, "who may call")
	var res admin.CallResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 5 {
		t.Fatalf("call --directory without a token: exit %d, output %q", code, out)
	}
	if res.Path != admin.PathHTTP || res.Attempts != 1 || !res.Encrypted || res.Response == nil || res.Response.Error == nil ||
		res.Response.Error.Code != "unauthorized" {
		t.Fatalf("call --directory without a token: %+v (response %+v)", res, res.Response)
	}
	if n := c.backendCalls.Load(); n != before {
		t.Fatalf("backend ran %d task(s) for an unauthorized call", n-before)
	}
}

// checkHeartbeats: NODE-REG-02 / IICP-E2E-01, heartbeats keep both nodes
// discoverable well past the 3 s test-profile expiry window. It returns
// node 1's status for the restart phase.
func (c *cluster) checkHeartbeats(t *testing.T) *admin.Status {
	past := time.Now().Add(4 * time.Second)
	eventually(t, 10*time.Second, "expiry window to pass", func() bool { return time.Now().After(past) })
	if d := discover(t, c.dirURL); !d[c.rts[0].NodeID] || !d[c.rts[1].NodeID] {
		t.Fatalf("a heartbeating node expired: %v", d)
	}
	st := status(t, c.bin, c.homes[0])
	if st == nil || len(st.Directories) != 1 || st.Directories[0].State != "registered" || st.Directories[0].Heartbeats < 3 ||
		st.ObservedSourceIP != "127.0.0.1" {
		t.Fatalf("status: %+v", st)
	}
	return st
}

// checkKilledNodeExpires: DIR-HB-04, a killed node (no deregistration)
// leaves discover within the expiry window (3 s) plus one maintenance pass.
func (c *cluster) checkKilledNodeExpires(t *testing.T) {
	c.nodes[1].stop(syscall.SIGKILL, 5*time.Second)
	killed := time.Now()
	eventually(t, 8*time.Second, "killed node to leave discover", func() bool { return !discover(t, c.dirURL)[c.rts[1].NodeID] })
	t.Logf("killed node left discover after %v", time.Since(killed).Round(time.Millisecond))
}

// checkDirectoryRestart: restarting the directory loses no registration:
// node 1 reappears on the same registration (same registered_at, st is its
// status from before) and keeps heartbeating.
func (c *cluster) checkDirectoryRestart(t *testing.T, st *admin.Status) {
	regAt, hb := st.Directories[0].RegisteredAt, st.Directories[0].Heartbeats
	if code := c.dir.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("directory exit code %d", code)
	}
	dirPort := strings.TrimPrefix(c.dirURL, "http://")
	dir2 := start(t, "directory (restarted)", c.bin, "--home", c.dirHome, "directory", "--dev", "--listen", dirPort)
	if u := directoryURL(t, dir2); u != c.dirURL {
		t.Fatalf("restarted directory on %s, want %s", u, c.dirURL)
	}
	eventually(t, 10*time.Second, "node 1 discoverable after directory restart", func() bool { return discover(t, c.dirURL)[c.rts[0].NodeID] })
	eventually(t, 10*time.Second, "heartbeats after restart", func() bool {
		s := status(t, c.bin, c.homes[0])
		return s != nil && s.Directories[0].State == "registered" && s.Directories[0].Heartbeats > hb+2
	})
	if s := status(t, c.bin, c.homes[0]); !s.Directories[0].RegisteredAt.Equal(regAt) {
		t.Fatalf("node re-registered after the directory restart (%v -> %v)", regAt, s.Directories[0].RegisteredAt)
	}
}

// checkGracefulShutdown: DIR-LIFECYCLE-06, SIGTERM deregisters at once and
// exits 0; the stopped node's status command exits 4 (not running).
func (c *cluster) checkGracefulShutdown(t *testing.T) {
	if code := c.nodes[0].stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("node 1 exit code %d", code)
	}
	if discover(t, c.dirURL)[c.rts[0].NodeID] {
		t.Fatal("node 1 still discoverable after a graceful shutdown")
	}
	if _, code := run(t, c.bin, 10*time.Second, "--home", c.homes[0], "status"); code != 4 {
		t.Fatalf("status of a stopped node: exit %d, want 4", code)
	}
}

// callJSON runs `meshnode call --json --remote` through the node at home
// (another node serves it, even when this one serves the intent) and
// requires a successful RESPONSE.
func callJSON(t *testing.T, bin, home, prompt string) admin.CallResult {
	t.Helper()
	out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--json", "--remote", prompt)
	var res admin.CallResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("call --json: exit %d, %q", code, out)
	}
	if res.Response == nil || res.Response.Status != "success" {
		t.Fatalf("call --json: %+v", res)
	}
	t.Logf("call --json via %s: path %s, node %s, peer %s, encrypted %v", filepath.Base(home), res.Path, res.NodeID, res.PeerID, res.Encrypted)
	return res
}
