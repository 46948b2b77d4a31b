package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// TestSecReRegistrationHijackAndLockout attacks a real `meshnode directory`
// with a real `meshnode up` node registered, as the issue 12 review did:
//   - a token-less re-registration of a node's public node_id is refused
//     with 403 IICP-E050 (the meshnode node, and a plain node without a
//     cx_public_key), the owner's token keeps working, and the node cannot
//     be deregistered without it (item 4);
//   - 3,000 junk REGISTER POSTs do not lock a newcomer out: a second node
//     started afterwards registers and is discoverable (item 3);
//   - /readyz reports the store taking writes (item 6).
func TestSecReRegistrationHijackAndLockout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, h1, h2 := filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")
	for _, h := range []string{dirHome, h1, h2} {
		writeTestConfig(t, h)
	}
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := []string{"up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh"}
	n1 := start(t, "node1", bin, append([]string{"--home", h1}, nodeArgs...)...)
	rt := runtimeOf(t, n1, h1)
	eventually(t, 15*time.Second, "node1 discoverable", func() bool { return discover(t, dirURL)[rt.NodeID] })
	var tok string
	eventually(t, 10*time.Second, "node1 token", func() bool {
		out, code := run(t, bin, 10*time.Second, "--home", h1, "token")
		tok = strings.TrimSpace(out)
		return code == 0 && tok != ""
	})

	// The attacker copies everything public about the node (node_id,
	// endpoint, cx_public_key from discover) and re-registers it without
	// the token.
	hijack := map[string]any{
		"node_id": rt.NodeID, "endpoint": rt.Endpoint, "region": "attacker",
		"capabilities":  []map[string]any{{"intent": wire.IntentChat, "models": []string{"evil"}, "max_tokens": 1024}},
		"limits":        map[string]any{"max_concurrent": 1},
		"cx_public_key": publicCXKey(t, dirURL, rt.NodeID),
	}
	code, body := postJSON(t, dirURL+"/v1/register", hijack, "")
	if code != http.StatusForbidden || !strings.Contains(body, `"IICP-E050"`) || strings.Contains(body, `"node_token"`) {
		t.Fatalf("token-less re-registration of a live node: %d %s", code, body)
	}
	if code, body := postJSON(t, dirURL+"/v1/heartbeat", map[string]any{"node_id": rt.NodeID}, tok); code != http.StatusOK {
		t.Fatalf("owner's token after the hijack attempt: %d %s", code, body)
	}
	checkPlainNodeHijack(t, dirURL)
	req, _ := http.NewRequest(http.MethodDelete, dirURL+"/v1/register", nil)
	if resp, err := plainClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token-less deregistration: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	for i := range 3000 {
		if code, _ := postJSON(t, dirURL+"/v1/register", map[string]any{"endpoint": "x"}, ""); code != http.StatusUnprocessableEntity {
			t.Fatalf("junk %d: %d", i, code)
		}
	}
	n2 := start(t, "node2", bin, append([]string{"--home", h2}, nodeArgs...)...)
	rt2 := runtimeOf(t, n2, h2)
	eventually(t, 15*time.Second, "node2 registers after the junk flood", func() bool {
		d := discover(t, dirURL)
		return d[rt2.NodeID] && d[rt.NodeID]
	})
	resp, err := plainClient.Get(dirURL + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, p := range []*proc{n2, n1, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
	if strings.Contains(dir.stdout()+dir.stderr(), tok) {
		t.Fatal("the node token reached the directory's output")
	}
}

// postJSON posts v and returns the status and body; tok, when set, is the
// bearer token.
func postJSON(t *testing.T, url string, v any, tok string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// publicCXKey is the cx_public_key discover serves for nodeID (nil when it
// has none).
func publicCXKey(t *testing.T, dirURL, nodeID string) json.RawMessage {
	t.Helper()
	resp, err := plainClient.Get(dirURL + "/v1/discover?intent=" + wire.IntentChat + "&limit=50")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var nl struct {
		Nodes []struct {
			NodeID string          `json:"node_id"`
			CX     json.RawMessage `json:"cx_public_key"`
		} `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&nl); err != nil {
		t.Fatal(err)
	}
	for _, n := range nl.Nodes {
		if n.NodeID == nodeID {
			return n.CX
		}
	}
	t.Fatalf("node %s not in discover", nodeID)
	return nil
}

// checkPlainNodeHijack: a node of another implementation that publishes no
// cx_public_key (the review's victim). The token-less re-registration
// used to get 201 and a fresh token, locking the owner out.
func checkPlainNodeHijack(t *testing.T, dirURL string) {
	t.Helper()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer plain.Close()
	victim := map[string]any{
		"endpoint": plain.URL, "region": "eu-central",
		"capabilities": []map[string]any{{"intent": wire.IntentChat, "models": []string{"m"}, "max_tokens": 1024}},
		"limits":       map[string]any{"max_concurrent": 1},
	}
	code, body := postJSON(t, dirURL+"/v1/register", victim, "")
	var ack wire.RegisterAck
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &ack) != nil {
		t.Fatalf("plain node registration: %d %s", code, body)
	}
	victim["node_id"] = ack.NodeID
	if code, body := postJSON(t, dirURL+"/v1/register", victim, ""); code != http.StatusForbidden || !strings.Contains(body, `"IICP-E050"`) {
		t.Fatalf("token-less re-registration of a plain node: %d %s", code, body)
	}
	if code, body := postJSON(t, dirURL+"/v1/heartbeat", map[string]any{"node_id": ack.NodeID}, ack.NodeToken); code != http.StatusOK {
		t.Fatalf("plain node's token after the hijack attempt: %d %s", code, body)
	}
}
