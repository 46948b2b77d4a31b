package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// identityTasks is how many tasks a node serves before its identity moves.
const identityTasks = 3

// earnReputation runs identityTasks calls through the node at home (the
// only node, so it serves them) and waits until the directory has
// applied their outcomes; it returns the node's directory detail.
func earnReputation(t *testing.T, bin, home, dirURL, id string) map[string]any {
	t.Helper()
	for i := range identityTasks {
		out, code := run(t, bin, 30*time.Second, "--home", home, "call", "--json", "--qos", wire.QoSInteractive, fmt.Sprintf("task %d", i))
		var res admin.CallResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Response == nil || res.Response.NodeID != id {
			t.Fatalf("call %d: exit %d %s", i, code, out)
		}
	}
	var d map[string]any
	eventually(t, 20*time.Second, "the directory applies the node's outcomes", func() bool {
		d = nodeDetailOf(t, dirURL, id)
		return d["completed_tasks_count"] == float64(identityTasks)
	})
	if d["reputation_score"] != 0.5+0.01*identityTasks {
		t.Fatalf("reputation after %d tasks: %v", identityTasks, d)
	}
	return d
}

// TestIdentityExportImportKeepsNodeIDAndReputation: a `meshnode up` node
// serves tasks and earns reputation at a `meshnode directory`; `identity
// export` refuses while it runs; it stops (deregistering); the export is
// imported into a second home (a wrong passphrase and a second import
// without --force are refused); `meshnode up` from the second home keeps
// the node_id, and the directory gives it back its completed tasks and
// reputation (`meshnode status` shows them). `identity rotate` then
// replaces the key: the next up keeps node_id and reputation under the new
// public_key.
func TestIdentityExportImportKeepsNodeIDAndReputation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, h1, h2, bundle := filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2"), filepath.Join(base, "node.identity")
	pw, badPW := filepath.Join(base, "pw"), filepath.Join(base, "bad")
	for f, v := range map[string]string{pw: "correct horse battery\n", badPW: "wrong\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTestConfig(t, h1)
	writeTestConfig(t, h2)
	writeConfig(t, dirHome, "[directory_server]\nprobation_min_tasks = 2\nprobation_min_age = \"0s\"\n")
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := []string{"up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh"}
	n1 := start(t, "node1", bin, append([]string{"--home", h1}, nodeArgs...)...)
	id := runtimeOf(t, n1, h1).NodeID
	eventually(t, 15*time.Second, "node1 registered", func() bool { return discover(t, dirURL)[id] })
	before := earnReputation(t, bin, h1, dirURL, id)

	if out, code := run(t, bin, 30*time.Second, "--home", h1, "identity", "export", "--out", bundle, "--passphrase-file", pw); code == 0 {
		t.Fatalf("export of a running node: %s", out)
	}
	if code := n1.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("node1 exit %d", code)
	}
	if discover(t, dirURL)[id] {
		t.Fatal("node1 still discoverable after it stopped")
	}
	if out, code := run(t, bin, 60*time.Second, "--home", h1, "identity", "export", "--out", bundle, "--passphrase-file", pw); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("export: %d %s", code, out)
	}
	if fi, err := os.Stat(bundle); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bundle file: %v %v", fi, err)
	}
	if raw, _ := os.ReadFile(bundle); strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), "node_token") {
		t.Fatal("the bundle carries secrets in the clear")
	}
	if _, code := run(t, bin, 60*time.Second, "--home", h2, "identity", "import", bundle, "--passphrase-file", badPW); code == 0 {
		t.Fatal("a wrong passphrase imported the bundle")
	}
	if out, code := run(t, bin, 60*time.Second, "--home", h2, "identity", "import", bundle, "--passphrase-file", pw); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("import: %d %s", code, out)
	}
	if _, code := run(t, bin, 60*time.Second, "--home", h2, "identity", "import", bundle, "--passphrase-file", pw); code == 0 {
		t.Fatal("a second import replaced the identity without --force")
	}

	n2 := start(t, "node2", bin, append([]string{"--home", h2}, nodeArgs...)...)
	if got := runtimeOf(t, n2, h2).NodeID; got != id {
		t.Fatalf("imported node runs as %s, want %s", got, id)
	}
	after := waitHistory(t, dirURL, id, before)
	eventually(t, 15*time.Second, "status shows the kept reputation", func() bool {
		st := status(t, bin, h2)
		return st != nil && len(st.Directories) == 1 && st.Directories[0].State == "registered" &&
			st.Directories[0].Reputation.Score != nil && *st.Directories[0].Reputation.Score == before["reputation_score"]
	})
	if code := n2.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("node2 exit %d", code)
	}
	checkRotation(t, bin, h2, nodeArgs, dirURL, id, before, after["public_key"])
	if !strings.Contains(dir.stderr(), `msg="node key binding recorded" subsystem=directory component=directory node=`+id+" signer=node") {
		t.Fatalf("the directory did not record the rotation:\n%s", dir.stderr())
	}
	if code := dir.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("directory exit %d", code)
	}
	for _, p := range []*proc{n1, n2, dir} {
		if strings.Contains(p.stdout()+p.stderr(), "correct horse") {
			t.Fatalf("%s printed the passphrase", p.name)
		}
	}
}

// waitHistory waits until node id is discoverable with before's completed
// tasks, reputation and first registration, and returns its detail.
func waitHistory(t *testing.T, dirURL, id string, before map[string]any) map[string]any {
	t.Helper()
	var d map[string]any
	eventually(t, 20*time.Second, "node "+id+" back with its history", func() bool {
		if !discover(t, dirURL)[id] {
			return false
		}
		d = nodeDetailOf(t, dirURL, id)
		return d["completed_tasks_count"] == before["completed_tasks_count"]
	})
	if d["reputation_score"] != before["reputation_score"] || d["registered_at"] != before["registered_at"] {
		t.Fatalf("history not kept:\nbefore %v\nafter  %v", before, d)
	}
	return d
}

// checkRotation: `identity rotate` on the stopped node gives it a new key;
// the next up keeps node_id and history, and the directory now has the
// new public_key on record.
func checkRotation(t *testing.T, bin, home string, nodeArgs []string, dirURL, id string, before map[string]any, oldKey any) {
	t.Helper()
	if out, code := run(t, bin, 30*time.Second, "--home", home, "identity", "rotate"); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("identity rotate: %d %s", code, out)
	}
	n := start(t, "node2 (rotated)", bin, append([]string{"--home", home}, nodeArgs...)...)
	if got := runtimeOf(t, n, home).NodeID; got != id {
		t.Fatalf("rotated node runs as %s, want %s", got, id)
	}
	var d map[string]any
	eventually(t, 20*time.Second, "the directory has the rotated key", func() bool {
		d = nodeDetailOf(t, dirURL, id)
		return discover(t, dirURL)[id] && d["public_key"] != oldKey && d["public_key"] != nil
	})
	if d["completed_tasks_count"] != before["completed_tasks_count"] || d["reputation_score"] != before["reputation_score"] {
		t.Fatalf("history after rotation: %v", d)
	}
	if code := n.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("rotated node exit %d", code)
	}
}

// TestDIR_OPID_Recovery_EndToEnd: an operator-delegated `meshnode up` node
// earns reputation, then its machine is lost (SIGKILL: no deregistration;
// its key and token are gone with it). With only the operator key,
// `meshnode operator recover --node-id` creates a new key in a fresh home,
// bound to the old node_id by the operator's signature, plus a fresh
// delegation; `meshnode up` there keeps the node_id, and the directory
// accepts the new key as the same node: history, reputation and operator
// binding kept, the new public_key on record, the recovery recorded. A
// second node that replays the recovery into another home is refused.
func TestDIR_OPID_Recovery_EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, lost, fresh, key := filepath.Join(base, "dir"), filepath.Join(base, "lost"), filepath.Join(base, "fresh"), filepath.Join(base, "op", "operator.key")
	op := func(args ...string) (string, int) { return run(t, bin, 60*time.Second, append(args, "--key", key)...) }
	if out, code := op("operator", "init", "--name", "Acme Labs"); code != 0 {
		t.Fatalf("operator init: %d %s", code, out)
	}
	writeTestConfig(t, lost)
	writeTestConfig(t, fresh)
	if out, code := op("--home", lost, "operator", "delegate"); code != 0 {
		t.Fatalf("operator delegate: %d %s", code, out)
	}
	writeConfig(t, dirHome, "[directory_server]\nprobation_min_tasks = 2\nprobation_min_age = \"0s\"\n")
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := []string{"up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh"}
	n1 := start(t, "node (lost machine)", bin, append([]string{"--home", lost}, nodeArgs...)...)
	id := runtimeOf(t, n1, lost).NodeID
	eventually(t, 15*time.Second, "node operator-bound", func() bool { return operatorOf(t, dirURL, id)["operator_trust_tier"] == "did_key" })
	before := earnReputation(t, bin, lost, dirURL, id)
	n1.stop(syscall.SIGKILL, 5*time.Second)

	if out, code := op("--home", fresh, "operator", "recover", "--node-id", id); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("operator recover: %d %s", code, out)
	}
	if out, code := op("--home", fresh, "operator", "recover", "--node-id", id); code == 0 {
		t.Fatalf("recover over an existing identity without --force: %s", out)
	}
	n2 := start(t, "node (recovered)", bin, append([]string{"--home", fresh}, nodeArgs...)...)
	if got := runtimeOf(t, n2, fresh).NodeID; got != id {
		t.Fatalf("recovered node runs as %s, want %s", got, id)
	}
	var d map[string]any
	eventually(t, 20*time.Second, "the directory accepts the recovered key", func() bool {
		d = nodeDetailOf(t, dirURL, id)
		return d["public_key"] != before["public_key"] && d["public_key"] != nil && discover(t, dirURL)[id]
	})
	if d["completed_tasks_count"] != before["completed_tasks_count"] || d["reputation_score"] != before["reputation_score"] ||
		d["registered_at"] != before["registered_at"] {
		t.Fatalf("history after recovery:\nbefore %v\nafter  %v", before, d)
	}
	if operatorOf(t, dirURL, id)["operator_trust_tier"] != "did_key" {
		t.Fatal("the recovered node lost its operator binding")
	}
	if !strings.Contains(dir.stderr(), `msg="node key binding recorded" subsystem=directory component=directory node=`+id+" signer=operator") {
		t.Fatalf("the directory did not record the recovery:\n%s", dir.stderr())
	}
	checkReplayedRecovery(t, bin, fresh, filepath.Join(base, "replay"), nodeArgs)
	for _, p := range []*proc{n2, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
}

// checkReplayedRecovery copies the recovered home's binding and key into
// another home while the recovered node runs: the directory has already
// recorded that binding, so the copy is refused (IICP-E050) and `meshnode
// status` says so.
func checkReplayedRecovery(t *testing.T, bin, from, home string, nodeArgs []string) {
	t.Helper()
	writeTestConfig(t, home)
	for _, f := range []string{"identity.key", "node-key-binding.json", "operator-delegation.json"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := start(t, "node (replayed recovery)", bin, append([]string{"--home", home}, nodeArgs...)...)
	runtimeOf(t, n, home)
	eventually(t, 15*time.Second, "the replayed recovery refused", func() bool {
		st := status(t, bin, home)
		return st != nil && len(st.Directories) == 1 && strings.Contains(st.Directories[0].LastError, "IICP-E050")
	})
	if code := n.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("replay node exit %d", code)
	}
}

// TestIdentityRotatedNodeOnTheMesh: a mesh-enabled `meshnode up` node holds
// a membership credential; after `identity rotate` it starts again with
// the new key (new peer ID), keeps its node_id at the directory, and gets
// a membership credential for the new key (on the mesh it goes by the
// key's node_id).
func TestIdentityRotatedNodeOnTheMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, home := filepath.Join(base, "dir"), filepath.Join(base, "n1")
	writeTestConfig(t, home)
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	args := []string{"--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0",
		"--p2p", "/ip4/127.0.0.1/udp/0/quic-v1"}
	member := func(n *proc) *admin.Status {
		var st *admin.Status
		eventually(t, 20*time.Second, n.name+" holds a membership credential", func() bool {
			st = status(t, bin, home)
			return st != nil && st.Mesh.MembershipExpiresAt != nil
		})
		return st
	}
	n := start(t, "node", bin, args...)
	id := runtimeOf(t, n, home).NodeID
	before := member(n)
	if code := n.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("node exit %d", code)
	}
	if out, code := run(t, bin, 30*time.Second, "--home", home, "identity", "rotate"); code != 0 {
		t.Fatalf("rotate: %d %s", code, out)
	}
	n2 := start(t, "node (rotated)", bin, args...)
	if got := runtimeOf(t, n2, home).NodeID; got != id {
		t.Fatalf("rotated node runs as %s, want %s", got, id)
	}
	after := member(n2)
	if after.Mesh.PeerID == before.Mesh.PeerID || after.Mesh.PeerID == "" {
		t.Fatalf("peer ID after rotation: %s (before %s)", after.Mesh.PeerID, before.Mesh.PeerID)
	}
	if !discover(t, dirURL)[id] {
		t.Fatal("rotated node not discoverable under its node_id")
	}
	for _, p := range []*proc{n2, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
}
