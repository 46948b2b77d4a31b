package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// Network namespaces for LAN tests (homemesh_test.go): one namespace per
// node, each with a veth into a bridge that lives in a namespace of its
// own, addresses from 192.0.2.0/24 (TEST-NET-1). Needs root and `ip`.

// helperEnv selects a helper mode of the test binary (TestMain).
const helperEnv = "MESHNODE_E2E_HELPER"

// lan is a set of namespaces joined by one bridge.
type lan struct {
	bridgeNS string
	nodes    []string // namespace per node
}

// requireNetns skips unless the test can create network namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root): skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the `ip` command (iproute2) for network namespaces: skipped")
	}
	probe := fmt.Sprintf("mnprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("`ip netns add` does not work here (%v: %s): skipped", err, bytes.TrimSpace(out))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
}

// ipCmd runs `ip args...`, failing the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// newLAN creates n node namespaces on one bridge; node i (0-based) gets
// 192.0.2.(i+1)/24 on eth0. Everything is removed at cleanup, also when
// the test fails half-way (deleting a namespace deletes its links).
func newLAN(t *testing.T, n int) *lan {
	t.Helper()
	pid := os.Getpid()
	l := &lan{bridgeNS: fmt.Sprintf("mn%db", pid)}
	t.Cleanup(func() {
		for _, ns := range append(l.nodes, l.bridgeNS) {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	ipCmd(t, "netns", "add", l.bridgeNS)
	ipCmd(t, "-n", l.bridgeNS, "link", "set", "lo", "up")
	ipCmd(t, "-n", l.bridgeNS, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	ipCmd(t, "-n", l.bridgeNS, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("mn%dn%d", pid, i+1)
		l.nodes = append(l.nodes, ns)
		ipCmd(t, "netns", "add", ns)
		veth := fmt.Sprintf("vb%d", i+1)
		ipCmd(t, "-n", l.bridgeNS, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipCmd(t, "-n", l.bridgeNS, "link", "set", veth, "master", "br0")
		ipCmd(t, "-n", l.bridgeNS, "link", "set", veth, "up")
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		ipCmd(t, "-n", ns, "addr", "add", fmt.Sprintf("192.0.2.%d/24", i+1), "dev", "eth0")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
		// mDNS multicast leaves through eth0 (there is no default route).
		ipCmd(t, "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	return l
}

// exec runs a short command inside namespace ns and returns stdout,
// stderr and the exit code.
func (l *lan) exec(t *testing.T, ns string, timeout time.Duration, bin string, args ...string) (string, string, int) {
	t.Helper()
	return runCommand(timeout, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
}

// startHelper runs this test binary in namespace ns in helper mode; its
// first stdout line is returned (the helper's result or address).
func (l *lan) startHelper(t *testing.T, name, ns, mode string, env ...string) (*proc, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := startEnv(t, name, append(env, helperEnv+"="+mode), "ip", "netns", "exec", ns, self)
	var line string
	eventually(t, 20*time.Second, name+" first line", func() bool {
		if out := p.stdout(); strings.Contains(out, "\n") {
			line = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
			return true
		}
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", name, p.err, p.stderr())
		}
		return false
	})
	return p, line
}

// runHelper is the helper process: "backend" serves testBackend's
// OpenAI-compatible API on loopback inside its namespace and prints its
// URL; "attacker" calls a meshnode node over the mesh with the delegation
// in $MESHNODE_E2E_DELEGATION (attackerCase) and prints the answer.
func runHelper(mode string) int {
	switch mode {
	case "backend":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("http://%s\n", ln.Addr())
		var calls atomic.Int64
		srv := &http.Server{Handler: backendHandler(&calls), ReadHeaderTimeout: 5 * time.Second}
		_ = srv.Serve(ln) // until the test kills the process
		return 0
	case "attacker":
		out, err := attackerCase(os.Getenv("MESHNODE_E2E_TARGET"), os.Getenv("MESHNODE_E2E_DELEGATION"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(out)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// attackerResult is what the attacker helper prints.
type attackerResult struct {
	Code    wire.Code `json:"code"`
	Message string    `json:"message"`
}

// attackerCase dials target (a /p2p multiaddr) from a fresh libp2p key and
// sends one CALL whose HEADERS carry delegation: "" sends none (a LAN
// stranger), "own-foreign" a delegation of the attacker's own node_id by
// an operator key it just made (another operator), anything else is sent
// as written (JSON, e.g. a delegation stolen from another node).
func attackerCase(target, delegation string) (string, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := mesh.NewHost(ctx, priv, mesh.HostConfig{ListenAddrs: []string{"/ip4/0.0.0.0/udp/0/quic-v1"}, ConnLow: 4, ConnHigh: 8})
	if err != nil {
		return "", err
	}
	defer h.Close()
	ai, err := peer.AddrInfoFromString(target)
	if err != nil {
		return "", err
	}
	var d *wire.OperatorDelegation
	switch delegation {
	case "":
	case "own-foreign":
		_, opKey, _ := ed25519.GenerateKey(nil)
		own, _ := mesh.NodeIDOf(h.ID())
		dd := wire.SignDelegation(opKey, own, time.Now().Add(time.Hour).Unix())
		d = &dd
	default:
		d = new(wire.OperatorDelegation)
		if err := json.Unmarshal([]byte(delegation), d); err != nil {
			return "", err
		}
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return "", err
	}
	s, err := h.NewStream(ctx, ai.ID, mesh.TaskProtocolJSON)
	if err != nil {
		return "", err
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(15 * time.Second))
	hm := map[int]any{}
	if d != nil { // HEADERS key 3: the operator delegation, integer-keyed
		hm[3] = map[int]any{1: d.NodeID, 2: d.OperatorPub, 3: d.NotAfter, 4: d.Sig}
	}
	return exchangeRaw(s, hm)
}

// exchangeRaw writes HEADERS hm and a chat CALL on s and returns the
// answer's error as an attackerResult in JSON.
func exchangeRaw(s interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, hm map[int]any) (string, error) {
	hdr, err := cbor.Marshal(hm)
	if err != nil {
		return "", err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	call, _ := json.Marshal(map[string]any{"task_id": wire.UUIDv4(id), "call_id": wire.UUIDv4([16]byte{1}), "intent": wire.IntentChat,
		"payload":     map[string]any{"messages": []map[string]string{{"role": "user", "content": "a stranger's task"}}},
		"constraints": map[string]any{"timeout_ms": 10000}})
	req, err := wire.AppendFrame(nil, wire.MsgType(0xF0), 0, hdr)
	if err == nil {
		req, err = wire.AppendFrame(req, wire.TypeCall, 0, call)
	}
	if err != nil {
		return "", err
	}
	if _, err := s.Write(req); err != nil {
		return "", err
	}
	h, b, err := wire.NewFrameReader(bufio.NewReader(s)).ReadFrame()
	if err != nil || h.Type != wire.TypeResponse {
		return "", fmt.Errorf("answer: type %v: %v", h.Type, err)
	}
	var resp wire.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return "", err
	}
	r := attackerResult{}
	if resp.Error != nil {
		r.Code, r.Message = resp.Error.Code, resp.Error.Message
	}
	out, _ := json.Marshal(r)
	return string(out), nil
}
