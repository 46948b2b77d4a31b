package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// TestDIR_OPID_01_OperatorEndToEnd runs the operator flow as a user would,
// with real processes: `meshnode operator init --encrypt` (a 0600 key
// outside every node home, sealed with a passphrase) → `operator delegate`
// into two node homes → `meshnode up` sends the delegation in REGISTER →
// the `meshnode directory` verifies it offline and discovery shows the
// node operator-bound (operator_trust_tier did_key); `operator rename`
// sets the display name, after which discovery shows operator_display_name
// and the key's operator_fingerprint, never the key. A node already
// running unbound is delegated live: `operator delegate` asks it to
// re-register and discovery shows it bound. The directory caps nodes per
// operator (max_nodes_per_operator 2): a third delegated node is refused
// (403) and says so in `meshnode status`. A wrong passphrase opens nothing.
func TestDIR_OPID_01_OperatorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	opDir, dirHome, h1, h2 := filepath.Join(base, "operator"), filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")
	key, pwFile, badPW := filepath.Join(opDir, "operator.key"), filepath.Join(base, "pw"), filepath.Join(base, "bad-pw")
	for f, v := range map[string]string{pwFile: "correct horse battery\n", badPW: "wrong\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	op := func(args ...string) (string, int) {
		return run(t, bin, 60*time.Second, append(args, "--key", key, "--passphrase-file", pwFile)...)
	}
	if out, code := op("operator", "init", "--encrypt", "--name", "Acme Labs"); code != 0 || !strings.Contains(out, "passphrase-protected") {
		t.Fatalf("operator init: %d %s", code, out)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator key file: %v %v", fi, err)
	}
	var shown struct {
		PublicKey   string `json:"public_key"`
		Fingerprint string `json:"fingerprint"`
	}
	out, code := op("operator", "show", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Fingerprint) != 16 {
		t.Fatalf("operator show: %d %s", code, out)
	}
	if _, code := run(t, bin, 60*time.Second, "operator", "show", "--key", key, "--passphrase-file", badPW); code == 0 {
		t.Fatal("a wrong passphrase opened the operator key")
	}
	for _, h := range []string{h1, h2} {
		writeTestConfig(t, h)
		if out, code := op("--home", h, "operator", "delegate"); code != 0 || !strings.Contains(out, shown.Fingerprint) {
			t.Fatalf("operator delegate --home %s: %d %s", h, code, out)
		}
	}
	writeConfig(t, dirHome, "[directory_server]\nmax_nodes_per_operator = 2\n")
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := []string{"up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh"}
	n1 := start(t, "node1", bin, append([]string{"--home", h1}, nodeArgs...)...)
	id1 := runtimeOf(t, n1, h1).NodeID
	eventually(t, 15*time.Second, "node1 operator-bound in discover", func() bool {
		return operatorOf(t, dirURL, id1)["operator_trust_tier"] == "did_key"
	})
	if out, code := op("operator", "rename", "Acme Labs", "--directory", dirURL); code != 0 {
		t.Fatalf("operator rename: %d %s", code, out)
	}
	n := operatorOf(t, dirURL, id1)
	if n["operator_display_name"] != "Acme Labs" || n["operator_fingerprint"] != shown.Fingerprint {
		t.Fatalf("discover after rename: %v", n)
	}
	if strings.Contains(rawDiscover(t, dirURL), shown.PublicKey) {
		t.Fatal("discover serves the operator public key")
	}
	if st := status(t, bin, h1); st == nil || st.Operator == nil || st.Operator.Fingerprint != shown.Fingerprint || st.Operator.Problem != "" {
		t.Fatalf("node1 status operator: %+v", st)
	}

	n3 := checkLiveDelegation(t, bin, op, filepath.Join(base, "n3"), nodeArgs, dirURL)
	n2 := start(t, "node2", bin, append([]string{"--home", h2}, nodeArgs...)...)
	checkOperatorCap(t, bin, n2, h2, dirURL)
	for _, p := range []*proc{n3, n2, n1, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
	for _, p := range []*proc{n1, n2, n3, dir} {
		if strings.Contains(p.stdout()+p.stderr(), "correct horse") {
			t.Fatalf("%s printed the passphrase", p.name)
		}
	}
}

// checkLiveDelegation starts a node without a delegation (registered
// operator-unverified), then delegates it while it runs: the CLI asks the
// node to re-register and discovery shows it operator-bound.
func checkLiveDelegation(t *testing.T, bin string, op func(...string) (string, int), home string, nodeArgs []string, dirURL string) *proc {
	t.Helper()
	writeTestConfig(t, home)
	n := start(t, "node3", bin, append([]string{"--home", home}, nodeArgs...)...)
	id := runtimeOf(t, n, home).NodeID
	eventually(t, 15*time.Second, "node3 registered unbound", func() bool {
		e := operatorOf(t, dirURL, id)
		return e != nil && e["operator_trust_tier"] == nil
	})
	out, code := op("--home", home, "operator", "delegate")
	if code != 0 || !strings.Contains(out, "the running node sends it now") {
		t.Fatalf("operator delegate of a running node: %d %s", code, out)
	}
	eventually(t, 15*time.Second, "node3 operator-bound without a restart", func() bool {
		return operatorOf(t, dirURL, id)["operator_trust_tier"] == "did_key"
	})
	return n
}

// checkOperatorCap: the second node of an operator capped at one node is
// refused, says why in `meshnode status`, and is not discoverable.
func checkOperatorCap(t *testing.T, bin string, n2 *proc, h2, dirURL string) {
	t.Helper()
	id2 := runtimeOf(t, n2, h2).NodeID
	var st2 *admin.Status
	eventually(t, 15*time.Second, "node2 refused by the operator cap", func() bool {
		st2 = status(t, bin, h2)
		return st2 != nil && len(st2.Directories) == 1 && strings.Contains(st2.Directories[0].LastError, "max_nodes_per_operator")
	})
	if d := discover(t, dirURL); d[id2] || len(d) != 2 {
		t.Fatalf("the capped node is discoverable (or the others are not): %v", d)
	}
}

// operatorOf returns the discover entry of node id (nil when absent).
func operatorOf(t *testing.T, dirURL, id string) map[string]any {
	t.Helper()
	var nl struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if json.Unmarshal([]byte(rawDiscover(t, dirURL)), &nl) != nil {
		return nil
	}
	for _, n := range nl.Nodes {
		if n["node_id"] == id {
			return n
		}
	}
	return nil
}

func rawDiscover(t *testing.T, dirURL string) string {
	t.Helper()
	resp, err := plainClient.Get(dirURL + "/v1/discover?intent=" + wire.IntentChat + "&limit=50")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
