package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// secCluster is a directory and two mesh nodes run as real processes.
type secCluster struct {
	bin    string
	dirURL string
	homes  [2]string
	nodes  [2]*proc
	rts    [2]admin.Runtime
}

func startSecCluster(t *testing.T) *secCluster {
	c := &secCluster{bin: buildBinary(t)}
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome := filepath.Join(base, "dir")
	c.homes = [2]string{filepath.Join(base, "a"), filepath.Join(base, "b")}
	for _, h := range append([]string{dirHome}, c.homes[:]...) {
		writeTestConfig(t, h)
	}
	dir := start(t, "directory", c.bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--no-seed-log")
	c.dirURL = directoryURL(t, dir)
	for i, name := range []string{"node A", "node B"} {
		c.nodes[i] = start(t, name, c.bin, "--home", c.homes[i], "up", "--dev", "--directory", c.dirURL,
			"--backend", backend.URL, "--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1")
	}
	for i := range c.nodes {
		c.rts[i] = runtimeOf(t, c.nodes[i], c.homes[i])
	}
	eventually(t, 15*time.Second, "node A to know node B on the mesh", func() bool {
		ps := peers(t, c.bin, c.homes[0])
		return slices.ContainsFunc(ps, func(p admin.Peer) bool { return p.PeerID == c.rts[1].PeerID && p.NodeID == c.rts[1].NodeID })
	})
	return c
}

// hostile is an in-test libp2p host speaking raw gossipsub on the advert
// topic with no validator of its own: it can sign and publish anything.
type hostile struct {
	h      host.Host
	topic  *pubsub.Topic
	cancel context.CancelFunc
}

func newHostile(t *testing.T, victim admin.Runtime) *hostile {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := mesh.NewHost(ctx, priv, mesh.HostConfig{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, ConnLow: 10, ConnHigh: 20})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	x := &hostile{h: h, cancel: cancel}
	t.Cleanup(func() { x.cancel(); _ = x.h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if x.topic, err = ps.Join(mesh.AdvertTopic); err != nil {
		t.Fatal(err)
	}
	ai, err := peer.AddrInfoFromString(victim.P2PAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "hostile to see the victim on the advert topic", func() bool {
		return slices.Contains(x.topic.ListPeers(), ai.ID)
	})
	return x
}

// publish signs (with the hostile's own key, StrictSign) an advert naming
// nodeID and serving chat.
func (x *hostile) publish(t *testing.T, nodeID string, seq uint64) {
	t.Helper()
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.Marshal(&mesh.Advert{Version: 1, NodeID: nodeID, PeerID: x.h.ID().String(), Seq: seq,
		TimestampMs: time.Now().UnixMilli(), MaxConcurrent: 8, Available: true,
		Caps: []mesh.AdvertCap{{Intent: wire.IntentChat}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.topic.Publish(context.Background(), b); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// TestE2E_ForgedAdvertRejected (issue 12 item 1): a hostile libp2p peer
// joins the gossip of real `meshnode up` processes and advertises node B's
// node_id under its own key, with load 0 so a caller would prefer it. Node
// A rejects the advert (counted in `meshnode status`), never lists the
// hostile peer under node B's node_id, and `meshnode call` still reaches the
// real node B over the mesh. The hostile peer advertising its own node_id
// afterwards does reach A's peer table, so the gossip path was open.
func TestE2E_ForgedAdvertRejected(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	c := startSecCluster(t)
	x := newHostile(t, c.rts[0])
	victimNode := c.rts[1].NodeID
	seq := uint64(time.Now().UnixNano())
	eventually(t, 20*time.Second, "node A to reject the forged advert", func() bool {
		seq++
		x.publish(t, victimNode, seq)
		st := status(t, c.bin, c.homes[0])
		return st != nil && st.Mesh.Events["node_id_mismatch"] > 0
	})
	if m := getBody(t, c.rts[0].HTTPURL+"/metrics"); !strings.Contains(m, `meshnode_mesh_events_total{event="node_id_mismatch"}`) {
		t.Fatalf("node A's /metrics lacks the node_id_mismatch counter:\n%s", m)
	}
	for _, p := range peers(t, c.bin, c.homes[0]) {
		if p.PeerID == x.h.ID().String() || (p.NodeID == victimNode && p.PeerID != c.rts[1].PeerID) {
			t.Fatalf("forged advert reached the peer table: %+v", p)
		}
	}
	res := callJSON(t, c.bin, c.homes[0], "who answers")
	if res.Path != admin.PathMesh || res.PeerID != c.rts[1].PeerID || res.NodeID != victimNode {
		t.Fatalf("call: path %s peer %s node %s, want mesh via node B %s", res.Path, res.PeerID, res.NodeID, c.rts[1].PeerID)
	}
	own, err := mesh.NodeIDOf(x.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "node A to accept the hostile's honest advert", func() bool {
		seq++
		x.publish(t, own, seq)
		return slices.ContainsFunc(peers(t, c.bin, c.homes[0]), func(p admin.Peer) bool {
			return p.PeerID == x.h.ID().String() && p.NodeID == own
		})
	})
}

// TestE2E_ConsumerTokenAttacks (issue 12 item 1): with node A's directory
// credential (`meshnode token`) the test obtains a real consumer token from
// A for node B. Presented at node A's POST /v1/task (minted for B) it is
// refused 401 with an IICP error; presented to B over a libp2p task stream
// by a hostile peer (not its subject A) it is refused unauthorized; at B's
// POST /v1/task it then still works once (the refusals did not burn it),
// and the captured token replayed (same jti) is refused 401.
func TestE2E_ConsumerTokenAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	c := startSecCluster(t)
	nodeTok, code := run(t, c.bin, 10*time.Second, "--home", c.homes[0], "token")
	if code != 0 {
		t.Fatalf("meshnode token: exit %d", code)
	}
	tok := consumerToken(t, c.dirURL, strings.TrimSpace(nodeTok), c.rts[1].NodeID)

	status, body := postTask(t, c.rts[0].HTTPURL, tok)
	wantIICPError(t, "token for B at A", status, body, http.StatusUnauthorized, wire.CodeUnauthorized)
	if code := stolenOnMesh(t, c.rts[1], tok); code != wire.CodeUnauthorized {
		t.Fatalf("token stolen by a mesh peer: answer %q, want unauthorized", code)
	}
	if status, body = postTask(t, c.rts[1].HTTPURL, tok); status != http.StatusOK || !bytes.Contains(body, []byte(`"success"`)) {
		t.Fatalf("first use at B: %d %s", status, body)
	}
	status, body = postTask(t, c.rts[1].HTTPURL, tok)
	wantIICPError(t, "replay at B", status, body, http.StatusUnauthorized, wire.CodeUnauthorized)
	for i, p := range c.nodes {
		if strings.Contains(p.stderr(), tok[:40]) || strings.Contains(p.stdout(), tok[:40]) {
			t.Fatalf("node %d logged the consumer token", i)
		}
	}
}

// consumerToken asks the directory for a token from the holder of
// nodeToken to target (iicp-dir.md §3.12).
func consumerToken(t *testing.T, dirURL, nodeToken, target string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"target_node_id": target, "intent": wire.IntentChat, "single_use": true})
	req, _ := http.NewRequest(http.MethodPost, dirURL+"/v1/consumer-token", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+nodeToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.Token == "" {
		t.Fatalf("consumer token: %d %s", resp.StatusCode, b)
	}
	return out.Token
}

// postTask sends a chat CALL with only a consumer token to a node's bridge.
func postTask(t *testing.T, nodeURL, tok string) (int, []byte) {
	t.Helper()
	var id [16]byte
	_, _ = rand.Read(id[:])
	call := map[string]any{"task_id": wire.UUIDv4(id), "intent": wire.IntentChat,
		"payload":     map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}},
		"constraints": map[string]any{"timeout_ms": 10000}}
	b, _ := json.Marshal(call)
	req, _ := http.NewRequest(http.MethodPost, nodeURL+"/v1/task", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-IICP-Consumer-Token", tok)
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func wantIICPError(t *testing.T, what string, status int, body []byte, wantStatus int, code wire.Code) {
	t.Helper()
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if status != wantStatus || json.Unmarshal(body, &env) != nil || env.Error == nil || env.Error.Code != string(code) {
		t.Fatalf("%s: %d %s, want %d with IICP error %s", what, status, body, wantStatus, code)
	}
}

// stolenOnMesh presents tok to the node of rt from a fresh hostile libp2p
// host over /iicp/task-json/1.0.0 (HEADERS frame with the token, then the
// CALL) and returns the RESPONSE's error code ("" on success).
func stolenOnMesh(t *testing.T, rt admin.Runtime, tok string) wire.Code {
	t.Helper()
	x := newHostile(t, rt)
	ai, err := peer.AddrInfoFromString(rt.P2PAddrs[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := x.h.NewStream(ctx, ai.ID, mesh.TaskProtocolJSON)
	if err != nil {
		t.Fatalf("task stream: %v", err)
	}
	defer func() { _ = s.Reset() }()
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	hdr, err := cbor.Marshal(map[int]string{1: tok}) // HEADERS {1: consumer_token}
	if err != nil {
		t.Fatal(err)
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	call, _ := json.Marshal(map[string]any{"task_id": wire.UUIDv4(id), "call_id": wire.UUIDv4([16]byte{1}), "intent": wire.IntentChat,
		"payload":     map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}},
		"constraints": map[string]any{"timeout_ms": 10000}})
	req, err := wire.AppendFrame(nil, wire.MsgType(0xF0), 0, hdr)
	if err == nil {
		req, err = wire.AppendFrame(req, wire.TypeCall, 0, call)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	h, b, err := wire.NewFrameReader(s).ReadFrame()
	if err != nil || h.Type != wire.TypeResponse {
		t.Fatalf("answer: type %v err %v", h.Type, err)
	}
	var resp wire.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("decoding answer: %v", err)
	}
	if resp.Error == nil {
		return ""
	}
	return resp.Error.Code
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
