package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/operator"
	"github.com/meshnode/meshnode/wire"
)

// TestOperatorCommands: init with a passphrase from the
// environment, show, delegate into a fresh node home (creating the node
// key), delegate --node-id to stdout; without any passphrase source and
// no terminal the sealed key is refused with a clear exit-3 message.
func TestOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	key, home := filepath.Join(dir, "op", "operator.key"), filepath.Join(dir, "node")
	vars := map[string]string{envOperatorKey: key, envOperatorPassphrase: "s3cret passphrase"}
	e, out, _ := testEnv(vars, "")
	if code := execute(e, "operator", "init", "--encrypt", "--name", "Acme"); code != exitOK || !strings.Contains(out.String(), "passphrase-protected") {
		t.Fatalf("init: %d %s", code, out)
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Fatal("init printed the passphrase")
	}
	e, out, _ = testEnv(vars, "")
	if code := execute(e, "operator", "show", "--json"); code != exitOK {
		t.Fatalf("show: %d", code)
	}
	var shown map[string]any
	if err := json.Unmarshal(out.Bytes(), &shown); err != nil || shown["encrypted"] != true {
		t.Fatalf("show: %v %s", err, out)
	}

	e, out, _ = testEnv(vars, "")
	if code := execute(e, "--home", home, "operator", "delegate", "--ttl", "1h"); code != exitOK {
		t.Fatalf("delegate --home: %d %s", code, out)
	}
	id, err := identity.Load(filepath.Join(home, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := operator.ReadDelegation(filepath.Join(home, operator.DelegationFile))
	if err != nil || !ok {
		t.Fatalf("delegation file: %v %v", ok, err)
	}
	if pub, err := wire.VerifyDelegation(&d, id.NodeID(), time.Now().Unix()); err != nil || wire.OperatorFingerprint(pub) != shown["fingerprint"] {
		t.Fatalf("delegation does not verify for the node: %v", err)
	}

	e, out, _ = testEnv(vars, "")
	if code := execute(e, "operator", "delegate", "--node-id", "7c9e6679-7425-40de-944b-e07fc1f90ae7"); code != exitOK {
		t.Fatalf("delegate --node-id: %d", code)
	}
	var printed wire.OperatorDelegation
	if err := json.Unmarshal(out.Bytes(), &printed); err != nil || printed.NodeID != "7c9e6679-7425-40de-944b-e07fc1f90ae7" {
		t.Fatalf("printed delegation: %v %s", err, out)
	}

	e, _, errb := testEnv(map[string]string{envOperatorKey: key}, "")
	if code := execute(e, "operator", "show"); code != exitConfig {
		t.Fatalf("no passphrase: exit %d, want %d (%s)", code, exitConfig, errb)
	}
	if _, err := os.Stat(filepath.Join(home, "operator.key")); err == nil {
		t.Fatal("the operator key landed in the node home")
	}
}
