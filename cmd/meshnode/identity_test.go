package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentityCommands: export without --out or a passphrase source is a
// usage/config error; export of a home without an identity fails; an
// export → import round trip through the environment passphrase keeps the
// node ID `id` prints; a second import needs --force; `rotate` keeps the
// node ID; `operator recover` refuses a node_id that is no UUID.
func TestIdentityCommands(t *testing.T) {
	dir := t.TempDir()
	h1, h2, bundle := filepath.Join(dir, "n1"), filepath.Join(dir, "n2"), filepath.Join(dir, "b.identity")
	vars := map[string]string{envIdentityPassphrase: "bundle passphrase"}
	e, _, _ := testEnv(vars, "")
	if code := execute(e, "--home", h1, "identity", "export"); code != exitUsage {
		t.Fatalf("export without --out: %d", code)
	}
	e, _, _ = testEnv(nil, "")
	if code := execute(e, "--home", h1, "identity", "export", "--out", bundle); code != exitConfig {
		t.Fatalf("export without a passphrase: %d", code)
	}
	e, _, _ = testEnv(vars, "")
	if code := execute(e, "--home", h1, "identity", "export", "--out", bundle); code != exitFailure {
		t.Fatalf("export of an empty home: %d", code)
	}
	idOf := func(home string) string {
		e, out, _ := testEnv(nil, "")
		if code := execute(e, "--home", home, "id"); code != exitOK {
			t.Fatalf("id: %d", code)
		}
		return strings.Fields(out.String())[2]
	}
	e, _, _ = testEnv(vars, "")
	if code := execute(e, "--home", h1, "identity", "rotate"); code != exitFailure {
		t.Fatalf("rotate without an identity: %d", code)
	}
	createIdentity(t, h1)
	id := idOf(h1)
	e, out, _ := testEnv(vars, "")
	if code := execute(e, "--home", h1, "identity", "export", "--out", bundle); code != exitOK || !strings.Contains(out.String(), id) {
		t.Fatalf("export: %d %s", code, out)
	}
	for i, want := range []int{exitOK, exitFailure} {
		e, _, _ = testEnv(vars, "")
		if code := execute(e, "--home", h2, "identity", "import", bundle); code != want {
			t.Fatalf("import %d: %d, want %d", i, code, want)
		}
	}
	if got := idOf(h2); got != id {
		t.Fatalf("imported id %s, want %s", got, id)
	}
	e, _, _ = testEnv(vars, "")
	if code := execute(e, "--home", h2, "identity", "rotate"); code != exitOK || idOf(h2) != id {
		t.Fatalf("rotate: %d", code)
	}
	e, _, _ = testEnv(nil, "")
	if code := execute(e, "--home", h2, "operator", "recover", "--node-id", "node-1"); code != exitUsage {
		t.Fatalf("recover with a bad node id: %d", code)
	}
}

// createIdentity makes the node key of home as `up` would.
func createIdentity(t *testing.T, home string) {
	t.Helper()
	e, _, _ := testEnv(map[string]string{envOperatorKey: filepath.Join(t.TempDir(), "op.key")}, "")
	if code := execute(e, "operator", "init"); code != exitOK {
		t.Fatalf("operator init: %d", code)
	}
	if code := execute(e, "--home", home, "operator", "delegate"); code != exitOK {
		t.Fatalf("delegate: %d", code)
	}
}
