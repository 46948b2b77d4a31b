package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// runErr runs a short command and returns its stderr and exit code.
func runErr(t *testing.T, bin string, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=", "MESHNODE_HOME=", "E2E_UNSET_API_KEY=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("meshnode %s did not exit within %v\nstderr: %s", strings.Join(args, " "), timeout, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return errb.String(), code
}

// checkOneLine asserts the start-up failure contract: exactly one line on
// stderr, naming the cause (want), and no Go panic or goroutine dump.
func checkOneLine(t *testing.T, stderr string, code, wantCode int, want ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if code != wantCode || len(lines) != 1 || !strings.HasPrefix(lines[0], "meshnode: ") ||
		strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
		t.Fatalf("exit %d (want %d), stderr %d lines:\n%s", code, wantCode, len(lines), stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Fatalf("stderr %q does not name %q", stderr, w)
		}
	}
}

// takenPort holds a TCP port open for the test.
func takenPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func homeWith(t *testing.T, extra string) string {
	t.Helper()
	home := t.TempDir()
	cfg := "version = 1\nprofile = \"test\"\n" + extra
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// TestStartupFailuresAreOneLine (issue 11 item 1): each start-up failure is
// one stderr line with cause and fix, the documented exit code (1: retried
// by the units; 3: needs an operator), never a panic.
func TestStartupFailuresAreOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	taken := takenPort(t)
	_, port, _ := net.SplitHostPort(taken)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	_, udpPort, _ := net.SplitHostPort(udp.LocalAddr().String())
	openKey := filepath.Join(t.TempDir(), "mcp.key")
	if err := os.WriteFile(openKey, []byte("k-0123456789abcdef0123"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, extra string
		args        []string
		code        int
		want        []string
	}{
		{"http bridge in use", "", []string{"--http", taken}, 1, []string{"HTTP bridge", taken, "in use", "--http"}},
		{"mesh port in use", "", []string{"--p2p", "/ip4/127.0.0.1/tcp/" + port}, 1, []string{"mesh", port, "in use", "--p2p"}},
		{"mesh QUIC port in use", "", []string{"--p2p", "/ip4/127.0.0.1/udp/" + udpPort + "/quic-v1"}, 1, []string{"mesh", udpPort, "in use", "--p2p"}},
		{"admin port in use", "[admin]\nlisten = \"" + taken + "\"\n", nil, 1, []string{"admin", taken, "in use", "admin.listen"}},
		{"api key variable unset", "[backend]\nurl = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]\napi_key_env = \"E2E_UNSET_API_KEY\"\n", nil, 3,
			[]string{"E2E_UNSET_API_KEY", "api_key_env"}},
		{"bad p2p address", "", []string{"--p2p", "not-a-multiaddr"}, 3, []string{"mesh.listen", "not-a-multiaddr"}},
		{"mcp port in use", "", []string{"--mcp-listen", taken}, 1, []string{"MCP server", taken, "in use", "--mcp-listen", "--no-mcp"}},
		{"mcp off loopback without a key", "", []string{"--mcp-listen", "0.0.0.0:0"}, 3, []string{"mcp.listen", "mcp.api_key_file"}},
		{"acme without a directory", "", []string{"--acme-domain", "node.example.net"}, 3, []string{"http.acme_domains", "--directory"}},
		{"acme in dev mode", "", []string{"--dev", "--directory", "http://127.0.0.1:9", "--acme-domain", "node.example.net"}, 3, []string{"http.acme_domains", "--dev"}},
		{"acme domain not a DNS name", "", []string{"--directory", "https://127.0.0.1:9", "--acme-domain", "localhost"}, 3, []string{"ACME domain", "localhost"}},
		{"mcp key file readable by others", "[mcp]\napi_key_file = \"" + openKey + "\"\n", nil, 3, []string{"mcp.api_key_file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := homeWith(t, c.extra)
			args := append([]string{"--home", home, "--log-level", "error", "up"}, c.args...)
			stderr, code := runErr(t, bin, 30*time.Second, args...)
			checkOneLine(t, stderr, code, c.code, c.want...)
		})
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"directory port in use", []string{"--listen", taken}, []string{"directory", taken, "in use", "--listen"}},
		{"directory gossip port in use", []string{"--listen", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/" + port}, []string{port, "in use", "--p2p"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--home", t.TempDir(), "--log-level", "error", "directory", "--dev"}, c.args...)
			stderr, code := runErr(t, bin, 30*time.Second, args...)
			checkOneLine(t, stderr, code, 1, c.want...)
		})
	}
}

// TestOneProcessPerHome (item 2): a second `up` or `directory` on a home in
// use refuses naming the holder's PID, and the first keeps its runtime files.
func TestOneProcessPerHome(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	home := homeWith(t, "")
	a := start(t, "node-a", bin, "--home", home, "up", "--no-directory")
	rt := runtimeOf(t, a, home)
	stderr, code := runErr(t, bin, 30*time.Second, "--home", home, "--log-level", "error", "up", "--no-directory")
	checkOneLine(t, stderr, code, 1, "process "+strconv.Itoa(a.cmd.Process.Pid), "--home")
	if _, err := os.Stat(filepath.Join(home, "runtime.json")); err != nil {
		t.Fatalf("second up removed the first's runtime file: %v", err)
	}
	if st := status(t, bin, home); st == nil || st.NodeID != rt.NodeID {
		t.Fatalf("first node no longer answers status: %+v", st)
	}
	d := start(t, "dir-a", bin, "--home", home, "directory", "--dev", "--listen", "127.0.0.1:0")
	directoryURL(t, d)
	stderr, code = runErr(t, bin, 30*time.Second, "--home", home, "--log-level", "error", "directory", "--dev", "--listen", "127.0.0.1:0")
	checkOneLine(t, stderr, code, 1, "process "+strconv.Itoa(d.cmd.Process.Pid))
	if c := a.stop(syscall.SIGTERM, 20*time.Second); c != 0 {
		t.Fatalf("node exit %d", c)
	}
	// A node's embedded directory shares the home's directory.db: it is
	// refused while `meshnode directory` holds it.
	stderr, code = runErr(t, bin, 30*time.Second, "--home", home, "--log-level", "error", "up")
	checkOneLine(t, stderr, code, 1, "embedded directory", "process "+strconv.Itoa(d.cmd.Process.Pid))
	// The lock dies with its holder: the home is usable again.
	b := start(t, "node-b", bin, "--home", home, "up", "--no-directory")
	runtimeOf(t, b, home)
}

var replicaHint = regexp.MustCompile(`meshnode (directory --seed \S+ --home \S+ --listen \S+ --dev)`)

// TestDirectoryOwnsItsState (item 3): a directory's log and keys live beside
// its --db, a second directory there is refused, and the replica hint it
// prints works when pasted on the same machine.
func TestDirectoryOwnsItsState(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	base := t.TempDir()
	home := homeWith(t, "")
	db := filepath.Join(base, "seed", "dir.db")
	seed := start(t, "seed", bin, "--home", home, "directory", "--dev", "--listen", "127.0.0.1:0", "--db", db)
	seedURL := directoryURL(t, seed)
	for _, f := range []string{"federation-seed.db", "federation-seed.key", "directory.lock"} {
		if _, err := os.Stat(filepath.Join(base, "seed", f)); err != nil {
			t.Fatalf("%s not beside --db: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "federation-seed.db")); err == nil {
		t.Fatal("federation log written to the home instead of beside --db")
	}
	stderr, code := runErr(t, bin, 30*time.Second, "--home", home, "--log-level", "error", "directory", "--dev",
		"--listen", "127.0.0.1:0", "--db", filepath.Join(base, "seed", "other.db"))
	checkOneLine(t, stderr, code, 1, "process "+strconv.Itoa(seed.cmd.Process.Pid))

	m := replicaHint.FindStringSubmatch(seed.stdout())
	if m == nil {
		t.Fatalf("no replica hint in:\n%s", seed.stdout())
	}
	rep := start(t, "replica", bin, strings.Fields(m[1])...)
	repURL := directoryURL(t, rep)
	if repURL == seedURL {
		t.Fatal("replica reused the seed's address")
	}
	// The replica serves the seed's state: a node registered at the seed is
	// discoverable at the replica.
	nhome := homeWith(t, "")
	n := start(t, "node", bin, "--home", nhome, "up", "--directory", seedURL, "--dev")
	rt := runtimeOf(t, n, nhome)
	eventually(t, 30*time.Second, "node discoverable at the replica", func() bool {
		return discover(t, repURL)[rt.NodeID]
	})
	if strings.Contains(rep.stderr(), "not the genesis seed") || strings.Contains(rep.stderr(), "level=ERROR") {
		t.Fatalf("replica errors:\n%s", rep.stderr())
	}
}

// switchBackend is an OpenAI-compatible server that can be turned off
// (every request then answers 503, as a stopped Ollama behind a proxy).
func switchBackend(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/models":
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"e2e-model","object":"model"}]}`))
		case "/v1/chat/completions":
			_, _ = w.Write([]byte(`{"id":"c1","object":"chat.completion","model":"e2e-model","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &up
}

// availability reads a node's available flag from the directory's discover.
func availability(t *testing.T, dirURL, nodeID string) (available, listed bool) {
	t.Helper()
	resp, err := plainClient.Get(dirURL + "/v1/discover?intent=" + wire.IntentChat + "&limit=50")
	if err != nil {
		return false, false
	}
	defer resp.Body.Close()
	var body struct {
		Nodes []struct {
			NodeID    string `json:"node_id"`
			Available bool   `json:"available"`
		} `json:"nodes"`
	}
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &body) != nil {
		return false, false
	}
	for _, n := range body.Nodes {
		if n.NodeID == nodeID {
			return n.Available, true
		}
	}
	return false, false
}

func getStatus(u string) (int, string) {
	resp, err := plainClient.Get(u)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthTellsTheTruth (items 1 and 5): a node whose backend is down at
// start still starts, unavailable at the directory, in its mesh advert and
// on /readyz (503) while /iicp/health stays 200 "degraded"; it becomes
// available when the backend answers and unavailable again when it dies,
// logging both transitions.
func TestHealthTellsTheTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	be, up := switchBackend(t)
	dir := start(t, "dir", bin, "--home", t.TempDir(), "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	home := homeWith(t, fmt.Sprintf("[backend]\nurl = %q\nmodels = [\"e2e-model\"]\n", be.URL+"/v1"))
	n := start(t, "node", bin, "--home", home, "up", "--directory", dirURL, "--dev")
	rt := runtimeOf(t, n, home)
	watcherHome := homeWith(t, "")
	w := start(t, "watcher", bin, "--home", watcherHome, "up", "--directory", dirURL, "--dev")
	runtimeOf(t, w, watcherHome)

	// The watcher learns the node's peer address from discover, which
	// lists available nodes only: the mesh check starts once it was up.
	expect := func(avail, meshToo bool) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("directory available=%v", avail), func() bool {
			// Discover lists available nodes only (an unavailable one may
			// also appear flagged available=false).
			a, listed := availability(t, dirURL, rt.NodeID)
			if !avail {
				return !listed || !a
			}
			return listed && a
		})
		eventually(t, 20*time.Second, fmt.Sprintf("mesh advert available=%v", avail), func() bool {
			if !meshToo {
				return true
			}
			for _, p := range peers(t, bin, watcherHome) {
				if p.NodeID == rt.NodeID {
					return p.Available == avail
				}
			}
			return false
		})
		wantReady := http.StatusServiceUnavailable
		if avail {
			wantReady = http.StatusOK
		}
		eventually(t, 10*time.Second, "readyz", func() bool { c, _ := getStatus(rt.HTTPURL + "/readyz"); return c == wantReady })
		code, body := getStatus(rt.HTTPURL + "/iicp/health")
		var h wire.Health
		if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h.Available != avail ||
			(h.Status == "ok") != avail {
			t.Fatalf("/iicp/health %d %s with available=%v", code, body, avail)
		}
	}
	expect(false, false)
	t0 := time.Now()
	up.Store(true)
	expect(true, true)
	t.Logf("backend up → available at directory, mesh and /readyz within %v", time.Since(t0).Round(10*time.Millisecond))
	t0 = time.Now()
	up.Store(false)
	expect(false, true)
	t.Logf("backend down → unavailable at directory, mesh and /readyz within %v (heartbeat fallback 1 s, advert interval 2 s)",
		time.Since(t0).Round(10*time.Millisecond))
	logs := n.stderr()
	for _, s := range []string{"node available", "node unavailable", "starts unavailable"} {
		if !strings.Contains(logs, s) {
			t.Fatalf("node log lacks %q:\n%s", s, logs)
		}
	}
}

// TestEchoOnlyUnderVendorIntentOutsideDev (item 6): a node without a model
// outside dev mode serves echo only under x.meshnode:echo, never llm:*.
func TestEchoOnlyUnderVendorIntentOutsideDev(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, dev := range []bool{false, true} {
		home := homeWith(t, "")
		args := []string{"--home", home, "up", "--no-directory", "--no-mesh"}
		if dev {
			args = append(args, "--dev")
		}
		p := start(t, fmt.Sprintf("node-dev-%v", dev), bin, args...)
		runtimeOf(t, p, home)
		st := status(t, bin, home)
		if st == nil {
			t.Fatal("no status")
		}
		if st.Health.Backend != "echo" {
			// Ollama autodetection found a service on its default port; the
			// echo fallback is then not what runs (hermetic detection is a
			// separate item of issue 11). TestEchoBackendRoutes covers it.
			t.Skipf("backend %q instead of the echo fallback", st.Health.Backend)
		}
		llm := false
		for _, i := range st.Health.Intents {
			llm = llm || strings.HasPrefix(i, "urn:iicp:intent:llm:")
		}
		if !dev && (llm || len(st.Health.Intents) != 1 || st.Health.Intents[0] != "urn:iicp:intent:x.meshnode:echo:v1") {
			t.Fatalf("non-dev echo node advertises %v", st.Health.Intents)
		}
		if dev && !llm {
			t.Fatalf("dev echo node advertises %v, want llm intents", st.Health.Intents)
		}
		if c := p.stop(syscall.SIGTERM, 20*time.Second); c != 0 {
			t.Fatalf("exit %d", c)
		}
	}
}

// TestCallSaysWhatHappened (item 6): a call for a model nobody serves ends
// with what the node answered (IICP-E029), not only no_available_node.
func TestCallSaysWhatHappened(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	be, up := switchBackend(t)
	up.Store(true)
	home := homeWith(t, fmt.Sprintf("[backend]\nurl = %q\nmodels = [\"e2e-model\"]\n", be.URL+"/v1"))
	n := start(t, "node", bin, "--home", home, "up")
	runtimeOf(t, n, home)
	stderr, code := runErr(t, bin, 30*time.Second, "--home", home, "call", "--model", "no-such-model", "hello")
	if code != 6 || !strings.Contains(stderr, "IICP-E029") || !strings.Contains(stderr, "model not served") {
		t.Fatalf("exit %d, stderr %q: want 6 naming IICP-E029", code, stderr)
	}
	if out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--model", "e2e-model", "hello"); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("call with the served model: exit %d, %q", code, out)
	}
	// A dead backend: the node leaves discover, and the call says why.
	up.Store(false)
	eventually(t, 20*time.Second, "call names the dead backend", func() bool {
		stderr, code := runErr(t, bin, 30*time.Second, "--home", home, "call", "hello")
		return code == 6 && strings.Contains(stderr, "its backend") && strings.Contains(stderr, "does not answer")
	})
}

// TestNodeBootsBeforeItsBackend (item 1): a node configured with
// backend.url but no backend.models, restarted while its backend is down
// (a reboot where the node wins the race), starts at once with the models
// the backend listed last time, unavailable, and becomes available when the
// backend answers.
func TestNodeBootsBeforeItsBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	be, up := switchBackend(t)
	up.Store(true)
	home := homeWith(t, fmt.Sprintf("[backend]\nurl = %q\n", be.URL+"/v1"))
	first := start(t, "node-first", bin, "--home", home, "up", "--no-directory", "--no-mesh", "--dev")
	runtimeOf(t, first, home)
	if c := first.stop(syscall.SIGTERM, 20*time.Second); c != 0 {
		t.Fatalf("exit %d", c)
	}
	up.Store(false)
	n := start(t, "node", bin, "--home", home, "up", "--no-directory", "--no-mesh", "--dev")
	rt := runtimeOf(t, n, home)
	code, body := getStatus(rt.HTTPURL + "/iicp/health")
	if code != 200 || !strings.Contains(body, `"e2e-model"`) || !strings.Contains(body, `"available":false`) {
		t.Fatalf("health while the backend is down: %d %s", code, body)
	}
	up.Store(true)
	eventually(t, 20*time.Second, "ready once the backend answers", func() bool {
		c, _ := getStatus(rt.HTTPURL + "/readyz")
		return c == http.StatusOK
	})
	if !strings.Contains(n.stderr(), "listed last time") || !strings.Contains(n.stderr(), "node available") {
		t.Fatalf("node log:\n%s", n.stderr())
	}
}
