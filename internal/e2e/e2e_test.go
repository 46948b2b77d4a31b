package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/admin"
)

// testBackend is an OpenAI-compatible server: GET /v1/models and
// POST /v1/chat/completions answering "backend says: <prompt>".
func testBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
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
	bin := buildBinary(t)
	backend, backendCalls := testBackend(t)
	base := t.TempDir()
	dirHome, n1Home, n2Home := filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")
	n3Home, repHome := filepath.Join(base, "n3"), filepath.Join(base, "replica")
	for _, h := range []string{dirHome, n1Home, n2Home, n3Home, repHome} {
		writeTestConfig(t, h)
	}

	// The directory is a Genesis Seed (the default) gossiping its event log;
	// a replica follows it (issue 7, `meshnode directory --seed`).
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0",
		"--p2p", "/ip4/127.0.0.1/udp/0/quic-v1")
	dirURL := directoryURL(t, dir)
	rep := start(t, "replica", bin, "--home", repHome, "directory", "--dev", "--listen", "127.0.0.1:0",
		"--seed", dirURL, "--gossip-peer", gossipAddr(t, dir))
	repURL := directoryURL(t, rep)
	nodeArgs := func(home string) []string {
		return []string{"--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL,
			"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	n1 := start(t, "node1", bin, nodeArgs(n1Home)...)
	n2 := start(t, "node2", bin, nodeArgs(n2Home)...)
	// Node 3 runs without the mesh: its calls take the HTTP path.
	n3 := start(t, "node3 (no mesh)", bin, "--home", n3Home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL,
		"--http", "127.0.0.1:0", "--no-mesh")
	rt1, rt2, rt3 := runtimeOf(t, n1, n1Home), runtimeOf(t, n2, n2Home), runtimeOf(t, n3, n3Home)
	if !strings.Contains(n1.stdout(), rt1.NodeID) || !strings.Contains(n1.stdout(), "peer ID") {
		t.Fatalf("start-up block lacks node/peer ID:\n%s", n1.stdout())
	}

	// NODE-REG-01: both nodes appear in discover after start.
	eventually(t, 10*time.Second, "both nodes discoverable", func() bool {
		d := discover(t, dirURL)
		return d[rt1.NodeID] && d[rt2.NodeID]
	})
	// DIR-FED-01: the replica serves the seed's registrations from the
	// verified log, pushed by gossip.
	eventually(t, 10*time.Second, "replica to list both nodes", func() bool {
		d := discover(t, repURL)
		return d[rt1.NodeID] && d[rt2.NodeID]
	})

	// A task through node 1's admin endpoint is served by the backend.
	out, code := run(t, bin, 30*time.Second, "--home", n1Home, "call", "hello mesh")
	if code != 0 || strings.TrimSpace(out) != "backend says: hello mesh" {
		t.Fatalf("call: exit %d, output %q", code, out)
	}
	if backendCalls.Load() < 1 {
		t.Fatal("backend never called")
	}

	// Issue 6: the two mesh nodes learn each other's adverts (peer table,
	// `meshnode peers`), and a call through node 1 takes the mesh path to
	// node 2, the only other mesh node.
	eventually(t, 10*time.Second, "node 1 to know node 2 on the mesh", func() bool {
		ps := peers(t, bin, n1Home)
		return len(ps) == 1 && ps[0].PeerID == rt2.PeerID && ps[0].NodeID == rt2.NodeID && len(ps[0].Intents) > 0
	})
	res := callJSON(t, bin, n1Home, "which path")
	if res.Path != admin.PathMesh || res.PeerID != rt2.PeerID || res.NodeID != rt2.NodeID {
		t.Fatalf("call between mesh nodes: path %q peer %s node %s, want mesh via %s", res.Path, res.PeerID, res.NodeID, rt2.PeerID)
	}
	if txt, _ := run(t, bin, 10*time.Second, "--home", n1Home, "peers"); !strings.Contains(txt, "LAST SEEN") || !strings.Contains(txt, "llm:chat:v1") {
		t.Fatalf("peers table:\n%s", txt)
	}

	// HTTP fallback (issue 6) with IICP-CX (issue 8): without the mesh the
	// call goes through directory discover and POST /v1/task, the payload
	// sealed to the chosen node's advertised key; that node opened it.
	res = callJSON(t, bin, n3Home, "which path")
	if res.Path != admin.PathHTTP || !res.Encrypted {
		t.Fatalf("call without mesh: path %q encrypted %v, want an encrypted http call", res.Path, res.Encrypted)
	}
	homes := map[string]string{rt1.NodeID: n1Home, rt2.NodeID: n2Home, rt3.NodeID: n3Home}
	servedHome, ok := homes[res.NodeID]
	if !ok {
		t.Fatalf("http call served by unknown node %s", res.NodeID)
	}
	if st := status(t, bin, servedHome); st == nil || st.CX.Opened < 1 || st.CX.KeyID == "" {
		t.Fatalf("serving node's CX status %+v, want a sealed task opened", st)
	}

	// NODE-REG-02 / IICP-E2E-01: heartbeats keep both nodes discoverable
	// well past the 3 s test-profile expiry window.
	past := time.Now().Add(4 * time.Second)
	eventually(t, 10*time.Second, "expiry window to pass", func() bool { return time.Now().After(past) })
	if d := discover(t, dirURL); !d[rt1.NodeID] || !d[rt2.NodeID] {
		t.Fatalf("a heartbeating node expired: %v", d)
	}
	st := status(t, bin, n1Home)
	if st == nil || len(st.Directories) != 1 || st.Directories[0].State != "registered" || st.Directories[0].Heartbeats < 3 ||
		st.ObservedSourceIP != "127.0.0.1" {
		t.Fatalf("status: %+v", st)
	}

	// DIR-HB-04: a killed node (no deregistration) leaves discover within
	// the expiry window (3 s) plus one maintenance pass.
	n2.stop(syscall.SIGKILL, 5*time.Second)
	killed := time.Now()
	eventually(t, 8*time.Second, "killed node to leave discover", func() bool { return !discover(t, dirURL)[rt2.NodeID] })
	t.Logf("killed node left discover after %v", time.Since(killed).Round(time.Millisecond))

	// Restarting the directory loses no registration: node 1 reappears on
	// the same registration (same registered_at) and keeps heartbeating.
	regAt := st.Directories[0].RegisteredAt
	if code := dir.stop(syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("directory exit code %d", code)
	}
	dirPort := strings.TrimPrefix(dirURL, "http://")
	dir2 := start(t, "directory (restarted)", bin, "--home", dirHome, "directory", "--dev", "--listen", dirPort)
	if u := directoryURL(t, dir2); u != dirURL {
		t.Fatalf("restarted directory on %s, want %s", u, dirURL)
	}
	eventually(t, 10*time.Second, "node 1 discoverable after directory restart", func() bool { return discover(t, dirURL)[rt1.NodeID] })
	hb := st.Directories[0].Heartbeats
	eventually(t, 10*time.Second, "heartbeats after restart", func() bool {
		s := status(t, bin, n1Home)
		return s != nil && s.Directories[0].State == "registered" && s.Directories[0].Heartbeats > hb+2
	})
	if s := status(t, bin, n1Home); !s.Directories[0].RegisteredAt.Equal(regAt) {
		t.Fatalf("node re-registered after the directory restart (%v -> %v)", regAt, s.Directories[0].RegisteredAt)
	}

	// DIR-LIFECYCLE-06: SIGTERM deregisters at once and exits 0.
	if code := n1.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("node 1 exit code %d", code)
	}
	if discover(t, dirURL)[rt1.NodeID] {
		t.Fatal("node 1 still discoverable after a graceful shutdown")
	}
	if _, code := run(t, bin, 10*time.Second, "--home", n1Home, "status"); code != 4 {
		t.Fatalf("status of a stopped node: exit %d, want 4", code)
	}
	t.Logf("end-to-end run took %v", time.Since(start0).Round(time.Millisecond))
}

// callJSON runs `meshnode call --json` through the node at home and
// requires a successful RESPONSE.
func callJSON(t *testing.T, bin, home, prompt string) admin.CallResult {
	t.Helper()
	out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--json", prompt)
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
