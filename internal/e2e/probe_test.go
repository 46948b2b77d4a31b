package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeEndpoint is a node's real HTTP endpoint (/iicp/health) that can go
// down and come back on the same port.
type nodeEndpoint struct {
	t    *testing.T
	addr string
	srv  *http.Server
	done chan struct{}
}

func (n *nodeEndpoint) up() {
	n.t.Helper()
	if n.addr == "" {
		n.addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("node endpoint on %s: %v", n.addr, err)
	}
	n.addr = ln.Addr().String()
	n.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})}
	n.done = make(chan struct{})
	go func() { defer close(n.done); _ = n.srv.Serve(ln) }()
}

func (n *nodeEndpoint) down() {
	_ = n.srv.Close()
	<-n.done
}

// TestDirectoryActiveProbing (DIR-PROBE-NODE-01): a real `meshnode
// directory` with directory_server.probe_interval = 1s hides a node whose
// endpoint stops answering although the node keeps heartbeating, and shows
// it again once the endpoint answers on the same address.
func TestDirectoryActiveProbing(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	home := filepath.Join(t.TempDir(), "dir")
	writeTestConfig(t, home)
	cfg := "version = 1\nprofile = \"test\"\n[directory_server]\nprobe_interval = \"1s\"\n"
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := &nodeEndpoint{t: t}
	ep.up()
	t.Cleanup(func() { _ = ep.srv.Close() })

	dir := start(t, "directory", bin, "--home", home, "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	id := newNodeID(t)
	token := registerWithToken(t, dirURL, id, "http://"+ep.addr)

	// The node heartbeats throughout (the test profile's window is 3 s), so
	// only the directory's own probe can take it out of discover.
	var last time.Time
	beat := func() {
		if time.Since(last) >= 500*time.Millisecond {
			heartbeatNode(t, dirURL, id, token)
			last = time.Now()
		}
	}
	listed := func() bool { beat(); return discover(t, dirURL)[id] }
	eventually(t, 10*time.Second, "registered node discoverable", listed)

	ep.down()
	eventually(t, 20*time.Second, "unreachable node hidden from discover", func() bool { return !listed() })
	if !strings.Contains(dir.stderr(), "failed its active probes") {
		t.Errorf("no demotion log line:\n%s", dir.stderr())
	}
	ep.up() // same address
	eventually(t, 20*time.Second, "node discoverable again once it answers", listed)
	if !strings.Contains(dir.stderr(), "answers its active probe again") {
		t.Errorf("no restore log line:\n%s", dir.stderr())
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exit code %d", code)
	}
}

// registerWithToken registers a chat node and returns its node_token.
func registerWithToken(t *testing.T, dirURL, id, endpoint string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"message_type": "REGISTER", "node_id": id, "endpoint": endpoint, "region": "eu-central",
		"capabilities": []map[string]any{{"intent": "urn:iicp:intent:llm:chat:v1", "models": []string{"e2e-model"}, "max_tokens": 4096}},
		"limits":       map[string]any{"max_concurrent": 4}, "sdk_language": "go", "implementation_name": "meshnode-e2e",
	})
	resp, err := plainClient.Post(dirURL+"/v1/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		NodeToken string `json:"node_token"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil || out.NodeToken == "" {
		t.Fatalf("register: HTTP %d", resp.StatusCode)
	}
	return out.NodeToken
}

// heartbeatNode sends one heartbeat as the node would.
func heartbeatNode(t *testing.T, dirURL, id, token string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"node_id": id})
	req, _ := http.NewRequest(http.MethodPost, dirURL+"/v1/heartbeat", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := plainClient.Do(req)
	if err != nil {
		return // the next beat retries
	}
	resp.Body.Close()
}
