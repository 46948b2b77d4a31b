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

// TestEndToEnd runs a directory and two nodes as real processes: a call is
// served, heartbeats keep both nodes discoverable past the expiry window,
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
	for _, h := range []string{dirHome, n1Home, n2Home} {
		writeTestConfig(t, h)
	}

	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := func(home string) []string {
		return []string{"--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL,
			"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	n1 := start(t, "node1", bin, nodeArgs(n1Home)...)
	n2 := start(t, "node2", bin, nodeArgs(n2Home)...)
	rt1, rt2 := runtimeOf(t, n1, n1Home), runtimeOf(t, n2, n2Home)
	if !strings.Contains(n1.stdout(), rt1.NodeID) || !strings.Contains(n1.stdout(), "peer ID") {
		t.Fatalf("start-up block lacks node/peer ID:\n%s", n1.stdout())
	}

	// NODE-REG-01: both nodes appear in discover after start.
	eventually(t, 10*time.Second, "both nodes discoverable", func() bool {
		d := discover(t, dirURL)
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

	// --json reports the path and the serving node. The mesh is tried
	// first; without a mesh peer for the intent the call goes over HTTP to
	// a discovered node (possibly node 1 itself).
	out, code = run(t, bin, 30*time.Second, "--home", n1Home, "call", "--json", "which path")
	var res admin.CallResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("call --json: exit %d, %q", code, out)
	}
	switch {
	case res.Response == nil || res.Response.Status != "success":
		t.Fatalf("call --json: %+v", res)
	case res.Path == admin.PathMesh && res.PeerID != rt2.PeerID:
		t.Fatalf("mesh call served by unknown peer %s", res.PeerID)
	case res.Path == admin.PathHTTP && res.NodeID != rt1.NodeID && res.NodeID != rt2.NodeID:
		t.Fatalf("http call served by unknown node %s", res.NodeID)
	case res.Path != admin.PathMesh && res.Path != admin.PathHTTP:
		t.Fatalf("unexpected path %q", res.Path)
	}
	t.Logf("call --json: path %s, node %s, peer %s", res.Path, res.NodeID, res.PeerID)

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
