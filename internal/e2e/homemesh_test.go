package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// homeNode is one `meshnode up` in its own network namespace.
type homeNode struct {
	name, ns, home string
	key            string // the operator key that delegates it
	p              *proc
	rt             admin.Runtime
}

// TestE2E_HomeMeshMDNS (issue 14 items 2 and 4): three `meshnode up`
// processes with the home profile, each in its own network namespace on
// one bridged LAN (192.0.2.0/24), each with its own fake OpenAI-compatible
// backend inside its namespace, and no directory anywhere
// (directory.disabled). Nodes 1 and 2 are delegated by operator key A
// (node 1 while it runs), node 3 by operator key B. Nodes 1 and 2 find each other by mDNS and
// `meshnode call --remote` on each is answered by the other over the mesh.
// Node 3 is found too, but 1 and 2 never send it their tasks (it belongs
// to another operator; once node 2 is stopped node 1's call fails rather
// than reach node 3) and node 3's own call fails with unauthorized. A LAN
// stranger dialling node 1 directly — no delegation, another operator's,
// or node 2's stolen delegation — gets unauthorized, and node 1 counts each
// refusal in meshnode_mesh_events_total.
func TestE2E_HomeMeshMDNS(t *testing.T) {
	requireNetns(t)
	bin := buildBinary(t)
	l := newLAN(t, 3)
	nodes := startHomeNodes(t, l, bin)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	up := time.Now()
	eventually(t, 30*time.Second, "every node to find the others by mDNS and learn their adverts", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if p, ok := l.peerOf(t, bin, a, b.rt.NodeID); a != b && (!ok || len(p.Intents) == 0 || p.Operator == "") {
					return false
				}
			}
		}
		return true
	})
	t.Logf("every node found the others by mDNS and verified their adverts %v after all were up", time.Since(up).Round(time.Millisecond))
	// The adverts proved each node's operator: 1 and 2 share one, 3 has its own.
	p2, _ := l.peerOf(t, bin, n1, n2.rt.NodeID)
	p3, _ := l.peerOf(t, bin, n1, n3.rt.NodeID)
	if !p2.SameOperator || p3.SameOperator || p3.Operator == p2.Operator {
		t.Fatalf("operators as node 1 sees them: node 2 %+v, node 3 %+v", p2, p3)
	}
	for _, pair := range [][2]*homeNode{{n1, n2}, {n2, n1}} {
		for i := range 5 {
			o := l.call(t, bin, pair[0], fmt.Sprintf("hello %d from %s", i, pair[0].name))
			if o.code != 0 || o.res.Path != admin.PathMesh || o.res.NodeID != pair[1].rt.NodeID ||
				o.res.Response == nil || o.res.Response.Status != wire.StatusSuccess {
				t.Fatalf("call on %s: exit %d, want answered by %s over the mesh: %s", pair[0].name, o.code, pair[1].name, o.out)
			}
		}
	}
	checkStrangers(t, l, bin, n1, n2)
	// With node 2 gone, node 3 is the only other node serving the intent:
	// node 1 still does not send it the task.
	if code := n2.p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("n2 exited %d", code)
	}
	if o := l.call(t, bin, n1, "not for strangers"); o.code == 0 {
		t.Fatalf("node 1's call succeeded with only another operator's node left: %s", o.out)
	}
	checkStrangerNode(t, l, bin, n3)
	for _, n := range []*homeNode{n1, n3} {
		if code := n.p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d", n.name, code)
		}
	}
}

// startHomeNodes makes operator keys A and B and starts one node per
// namespace with its own backend: nodes 1 and 2 delegated by A, node 3 by
// B. Node 2 and 3 are delegated before `up`; node 1 starts undelegated and
// is delegated while it runs (the CLI tells the node, which presents the
// delegation at once, no directory involved).
func startHomeNodes(t *testing.T, l *lan, bin string) []*homeNode {
	t.Helper()
	base := t.TempDir()
	keys := []string{filepath.Join(base, "opA.key"), filepath.Join(base, "opB.key")}
	for _, k := range keys {
		if out, code := run(t, bin, 30*time.Second, "operator", "init", "--key", k); code != 0 {
			t.Fatalf("operator init: %d %s", code, out)
		}
	}
	nodes := make([]*homeNode, 3)
	for i := range nodes {
		n := &homeNode{name: fmt.Sprintf("n%d", i+1), ns: l.nodes[i], home: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
		_, backendURL := l.startHelper(t, n.name+"-backend", n.ns, "backend")
		writeHomeConfig(t, n.home, backendURL)
		n.key = keys[min(i/2, 1)]
		if i > 0 {
			if out, code := run(t, bin, 30*time.Second, "--home", n.home, "operator", "delegate", "--key", n.key); code != 0 {
				t.Fatalf("operator delegate %s: %d %s", n.name, code, out)
			}
		}
		n.p = startEnv(t, n.name, nil, "ip", "netns", "exec", n.ns, bin, "--home", n.home, "up")
		nodes[i] = n
	}
	for i, n := range nodes {
		n.rt = runtimeOf(t, n.p, n.home)
		want := "mDNS on; nodes of operator"
		if i == 0 {
			want = "mDNS on; no operator delegation"
		}
		eventually(t, 10*time.Second, n.name+" start-up block naming mDNS and its operator", func() bool {
			return strings.Contains(n.p.stdout(), want)
		})
	}
	out, errOut, code := l.exec(t, nodes[0].ns, 30*time.Second, bin, "--home", nodes[0].home, "operator", "delegate", "--key", nodes[0].key)
	if code != 0 || !strings.Contains(out, "presents it on the mesh now") {
		t.Fatalf("live delegation of n1: %d %s %s", code, out, errOut)
	}
	return nodes
}

// checkStrangerNode: node 3 (operator B) gets unauthorized for its own
// call and nodes 1 and 2 sent it no task: no task stream ever reached it.
func checkStrangerNode(t *testing.T, l *lan, bin string, n3 *homeNode) {
	t.Helper()
	out, errOut, code := l.exec(t, n3.ns, 40*time.Second, bin, "--home", n3.home, "call", "--remote", "--timeout", "10s", "from the other operator")
	if code != 5 || !strings.Contains(errOut, string(wire.CodeUnauthorized)) || !strings.Contains(errOut, "another operator") {
		t.Fatalf("node 3's call: exit %d, want 5 and unauthorized naming the operator: %s %s", code, out, errOut)
	}
	ev := l.events(t, bin, n3)
	if ev["task_served"] != 0 || ev["operator_foreign"] != 0 {
		t.Fatalf("nodes 1/2 sent node 3 tasks: %v", ev)
	}
}

// checkStrangers: a LAN stranger calling node 1 directly is refused with
// unauthorized whatever it presents, and each refusal is counted.
func checkStrangers(t *testing.T, l *lan, bin string, n1, n2 *homeNode) {
	t.Helper()
	var target string
	for _, a := range n1.rt.P2PAddrs {
		if strings.Contains(a, "/192.0.2.1/") {
			target = a
		}
	}
	stolen, err := os.ReadFile(filepath.Join(n2.home, "operator-delegation.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, delegation, event, msg string }{
		{"no delegation", "", "task_unauthorized", "missing or invalid credentials"},
		{"another operator", "own-foreign", "operator_foreign", "another operator"},
		{"stolen from node 2", string(stolen), "operator_forged", "another node_id"},
	}
	for _, c := range cases {
		before := l.events(t, bin, n1)[c.event]
		p, line := l.startHelper(t, "stranger-"+c.name, l.nodes[2], "attacker",
			"MESHNODE_E2E_TARGET="+target, "MESHNODE_E2E_DELEGATION="+c.delegation)
		<-p.done
		var r attackerResult
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Code != wire.CodeUnauthorized || !strings.Contains(r.Message, c.msg) {
			t.Fatalf("stranger with %s: %q (%v), want unauthorized containing %q", c.name, line, err, c.msg)
		}
		if after := l.events(t, bin, n1)[c.event]; after <= before {
			t.Fatalf("stranger with %s: %s not counted (%d → %d)", c.name, c.event, before, after)
		}
	}
}

// writeHomeConfig: the home profile, no directory at all, mDNS on (the
// profile's default), every listener on port 0 (the mesh on all of the
// namespace's interfaces, so the LAN reaches it).
func writeHomeConfig(t *testing.T, home, backendURL string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version = 1
profile = "home"
[http]
listen = "127.0.0.1:0"
[openai]
listen = "127.0.0.1:0"
[mcp]
listen = "127.0.0.1:0"
[backend]
url = %q
[directory]
disabled = true
[mesh]
listen = ["/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"]
advert_interval = "2s"
`, backendURL)
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// peerOf returns the advert-backed entry for nodeID in a's peer table.
func (l *lan) peerOf(t *testing.T, bin string, a *homeNode, nodeID string) (admin.Peer, bool) {
	t.Helper()
	out, _, code := l.exec(t, a.ns, 10*time.Second, bin, "--home", a.home, "peers", "--json")
	var ps []admin.Peer
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil {
		return admin.Peer{}, false
	}
	i := slices.IndexFunc(ps, func(p admin.Peer) bool { return p.NodeID == nodeID && !p.FromDHT })
	if i < 0 {
		return admin.Peer{}, false
	}
	return ps[i], true
}

// call runs `meshnode call --json --remote` on n.
func (l *lan) call(t *testing.T, bin string, n *homeNode, prompt string) meshCallOutcome {
	t.Helper()
	out, _, code := l.exec(t, n.ns, 40*time.Second, bin, "--home", n.home, "call", "--json", "--remote", "--timeout", "10s", prompt)
	o := meshCallOutcome{code: code, out: out}
	_ = json.Unmarshal([]byte(out), &o.res)
	return o
}

// events reads n's meshnode_mesh_events_total counters (status --json).
func (l *lan) events(t *testing.T, bin string, n *homeNode) map[string]uint64 {
	t.Helper()
	out, errOut, code := l.exec(t, n.ns, 10*time.Second, bin, "--home", n.home, "status", "--json")
	var st admin.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status of %s: exit %d %s", n.name, code, errOut)
	}
	return st.Mesh.Events
}
