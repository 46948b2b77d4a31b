package idbundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/internal/identity"
	"github.com/meshnode/meshnode/internal/passbox"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

var (
	testNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	testPW  = []byte("correct horse battery")
)

// newHome makes a node home with an identity, credentials, a CX ring file
// and an operator delegation signed by op (nil: none).
func newHome(t testing.TB, op ed25519.PrivateKey) (paths.Paths, *identity.Identity) {
	t.Helper()
	p, err := paths.Resolve(t.TempDir(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	id, _, err := identity.LoadOrCreate(p.IdentityKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, p.Credentials, `{"version":1,"directories":{"https://dir.example":{"node_id":"`+id.NodeID()+`","node_token":"secret-token"}}}`)
	write(t, filepath.Join(p.StateDir, cx.DefaultFileName), `{"version":1,"node_id":"`+id.NodeID()+`","keys":[]}`)
	if op != nil {
		d, _ := json.Marshal(wire.SignDelegation(op, id.NodeID(), testNow.Add(time.Hour).Unix()))
		write(t, p.OperatorDelegation, string(d))
	}
	return p, id
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func emptyHome(t testing.TB) paths.Paths {
	t.Helper()
	p, err := paths.Resolve(t.TempDir(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExportImportRoundTrip: every carried file arrives byte for byte in
// the new home (0600), node_id is kept, and the bundle holds no secret in
// the clear.
func TestExportImportRoundTrip(t *testing.T) {
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	src, id := newHome(t, op)
	raw, nodeID, err := Export(src, testPW, testNow)
	if err != nil || nodeID != id.NodeID() {
		t.Fatalf("export: %v %s", err, nodeID)
	}
	if bytes.Contains(raw, []byte("secret-token")) || bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Fatal("the bundle carries a secret in the clear")
	}
	b, err := Decode(raw, testPW, testNow)
	if err != nil || len(b.Warnings) != 0 {
		t.Fatalf("decode: %v %v", err, b)
	}
	dst := emptyHome(t)
	if err := b.Install(dst, false); err != nil {
		t.Fatal(err)
	}
	for name, from := range Files(src) {
		want, err := os.ReadFile(from)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		to := Files(dst)[name]
		got, err := os.ReadFile(to)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs after import: %v", name, err)
		}
		if fi, _ := os.Stat(to); fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", name, fi.Mode().Perm())
		}
	}
	moved, _, err := identity.LoadNode(dst)
	if err != nil || moved.NodeID() != id.NodeID() {
		t.Fatalf("imported identity: %v", err)
	}
}

// TestImportRefusals: a wrong passphrase, an edited header, an existing
// identity without force, a home a node holds, a delegation for another
// node and a key that does not go by the recorded node_id are refused;
// an expired delegation imports with a warning.
func TestImportRefusals(t *testing.T) {
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	src, _ := newHome(t, op)
	raw, _, err := Export(src, testPW, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(raw, []byte("wrong"), testNow); !errors.Is(err, passbox.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	var h header
	_ = json.Unmarshal(raw, &h)
	h.NodeID = "0b8e6d5c-1f2a-4c3b-8d4e-5f6a7b8c9d0e"
	edited, _ := json.Marshal(h)
	if _, err := Decode(edited, testPW, testNow); !errors.Is(err, passbox.ErrWrongPassphrase) {
		t.Fatalf("edited node_id: %v", err)
	}
	b, err := Decode(raw, testPW, testNow.Add(2*time.Hour))
	if err != nil || len(b.Warnings) != 1 || !strings.Contains(b.Warnings[0], "expired") {
		t.Fatalf("expired delegation: %v %v", err, b)
	}
	if err := b.Install(src, false); !errors.Is(err, ErrExists) {
		t.Fatalf("existing identity: %v", err)
	}
	dst := emptyHome(t)
	if err := dst.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	lock, err := paths.AcquireLock(filepath.Join(dst.StateDir, paths.NodeLockFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Install(dst, true); err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("locked home: %v", err)
	}
	_ = lock.Release()

	other, _ := newHome(t, nil)
	otherID, _ := identity.Load(other.IdentityKey)
	d, _ := json.Marshal(wire.SignDelegation(op, otherID.NodeID(), testNow.Add(time.Hour).Unix()))
	if _, err := Decode(seal(t, b.NodeID, map[string][]byte{"identity.key": b.Files["identity.key"], "operator-delegation.json": d}), testPW, testNow); err == nil {
		t.Fatal("a delegation for another node was accepted")
	}
	if _, err := Decode(seal(t, otherID.NodeID(), map[string][]byte{"identity.key": b.Files["identity.key"]}), testPW, testNow); !errors.Is(err, ErrMismatch) {
		t.Fatalf("key of another node_id: %v", err)
	}
	if _, err := Decode(seal(t, b.NodeID, map[string][]byte{"identity.key": b.Files["identity.key"], "../../etc/passwd": []byte("x")}), testPW, testNow); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown file name: %v", err)
	}
}

// TestImportForceReplaces: --force installs over an identity and removes
// the carried files the bundle lacks, so nothing of the old node lingers.
func TestImportForceReplaces(t *testing.T) {
	src, id := newHome(t, nil)
	raw, _, err := Export(src, testPW, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	dst, _ := newHome(t, op)
	b, err := Decode(raw, testPW, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Install(dst, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst.OperatorDelegation); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the replaced node's delegation lingers: %v", err)
	}
	if got, _ := identity.Load(dst.IdentityKey); got.NodeID() != id.NodeID() {
		t.Fatal("identity not replaced")
	}
}

// TestExportRotatedNode: a node whose key was rotated exports and imports
// under its bound node_id.
func TestExportRotatedNode(t *testing.T) {
	src, id := newHome(t, nil)
	next, err := id.Rotate(testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := next.Binding()
	if err := identity.WriteBinding(src.NodeKeyBinding, b); err != nil {
		t.Fatal(err)
	}
	if err := next.Save(src.IdentityKey); err != nil {
		t.Fatal(err)
	}
	raw, nodeID, err := Export(src, testPW, testNow)
	if err != nil || nodeID != id.NodeID() {
		t.Fatalf("export: %v %s", err, nodeID)
	}
	got, err := Decode(raw, testPW, testNow)
	if err != nil || got.NodeID != id.NodeID() {
		t.Fatalf("decode: %v", err)
	}
}

// seal builds a bundle with the given files (bypassing Export's checks).
func seal(t testing.TB, nodeID string, files map[string][]byte) []byte {
	t.Helper()
	pl := payload{NodeID: nodeID, Files: map[string]string{}}
	for n, c := range files {
		pl.Files[n] = b64(c)
	}
	plain, _ := json.Marshal(pl)
	box, err := passbox.Seal(plain, testPW, additionalData(nodeID))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(header{Kind: Kind, Version: Version, NodeID: nodeID, CreatedAt: "x", Sealed: box})
	return raw
}

// FuzzDecode: any input is decoded or refused, never a panic; whatever
// decodes has a node key that goes by its node_id. Seeds: a real bundle
// (passphrase "p") and the shapes in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	src, _ := newHome(f, nil)
	raw, _, err := Export(src, []byte("p"), testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := Decode(in, []byte("p"), testNow)
		if err != nil {
			return
		}
		id, perr := identity.Parse(b.Files["identity.key"])
		if perr != nil || (id.NodeID() != b.NodeID && id.DerivedNodeID() == b.NodeID) {
			t.Fatalf("decoded an unverified bundle: %v", perr)
		}
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
