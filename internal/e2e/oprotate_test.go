package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDIR_OPID_KeyRotate_EndToEnd: an operator (passphrase-protected key)
// with a display name has a running `meshnode up` node at a `meshnode
// directory`. `meshnode operator rotate --directory … --node-home …`
// hands the identity to a successor key (§3.16 challenge + both
// signatures): discovery shows the node under the successor's fingerprint
// with the same display name at once, the node is re-delegated with the
// new key and re-registers (its status shows the new fingerprint), the key
// file holds the successor and the old key is kept beside it. The old key
// gets no further challenge.
func TestDIR_OPID_KeyRotate_EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, home, key, pw := filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "op", "operator.key"), filepath.Join(base, "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	op := func(args ...string) (string, int) {
		return run(t, bin, 60*time.Second, append(args, "--key", key, "--passphrase-file", pw)...)
	}
	if out, code := op("operator", "init", "--encrypt", "--name", "Acme Labs"); code != 0 {
		t.Fatalf("operator init: %d %s", code, out)
	}
	writeTestConfig(t, home)
	if out, code := op("--home", home, "operator", "delegate"); code != 0 {
		t.Fatalf("delegate: %d %s", code, out)
	}
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	n := start(t, "node", bin, "--home", home, "up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh")
	id := runtimeOf(t, n, home).NodeID
	eventually(t, 15*time.Second, "node operator-bound", func() bool { return operatorOf(t, dirURL, id)["operator_trust_tier"] == "did_key" })
	if out, code := op("operator", "rename", "Acme Labs", "--directory", dirURL); code != 0 {
		t.Fatalf("rename: %d %s", code, out)
	}
	oldFP := fingerprint(t, op)
	if operatorOf(t, dirURL, id)["operator_fingerprint"] != oldFP {
		t.Fatalf("before rotation: %v", operatorOf(t, dirURL, id))
	}
	out, code := op("operator", "rotate", "--directory", dirURL, "--node-home", home)
	if code != 0 || !strings.Contains(out, "1 nodes moved") || !strings.Contains(out, "re-delegated node "+id) {
		t.Fatalf("operator rotate: %d %s", code, out)
	}
	newFP := fingerprint(t, op)
	if newFP == oldFP {
		t.Fatal("the key file still holds the old key")
	}
	if v := operatorOf(t, dirURL, id); v["operator_fingerprint"] != newFP || v["operator_display_name"] != "Acme Labs" {
		t.Fatalf("discover after rotation: %v", v)
	}
	if _, err := os.Stat(key + ".previous"); err != nil {
		t.Fatalf("old key not kept: %v", err)
	}
	eventually(t, 15*time.Second, "the node runs on the new delegation", func() bool {
		st := status(t, bin, home)
		return st != nil && st.Operator != nil && st.Operator.Fingerprint == newFP && st.Operator.Problem == ""
	})
	// The rotated key is no operator any more: rotating it again fails.
	if out, code := run(t, bin, 60*time.Second, "operator", "rotate", "--directory", dirURL, "--key", key+".previous", "--passphrase-file", pw); code == 0 {
		t.Fatalf("the rotated-out key rotated again: %s", out)
	}
	for _, p := range []*proc{n, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
}

func fingerprint(t *testing.T, op func(...string) (string, int)) string {
	t.Helper()
	out, code := op("operator", "show", "--json")
	var s struct {
		Fingerprint string `json:"fingerprint"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("operator show: %d %s", code, out)
	}
	return s.Fingerprint
}
