package operator

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

var testNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

const testNodeID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

func pw(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }

// TestOperatorKeyFile: an operator key is created 0600 under a 0700
// directory, reloads to the same key, refuses to be overwritten, and is
// refused when others can read it.
func TestOperatorKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "op", "operator.key")
	k, err := Create(path, "Acme Labs", nil, false, testNow)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes %v %v", fi.Mode().Perm(), di.Mode().Perm())
	}
	l, err := Load(path, nil)
	if err != nil || !l.PublicKey().Equal(k.PublicKey()) || l.DisplayName != "Acme Labs" || l.Encrypted {
		t.Fatalf("reload: %v %+v", err, l)
	}
	if _, err := Create(path, "", nil, false, testNow); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil {
		t.Fatal("a world-readable operator key was loaded")
	}
}

// TestOperatorKeyPassphrase: a sealed key holds no plaintext seed, needs
// its passphrase, refuses a wrong one and a tampered file.
func TestOperatorKeyPassphrase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "operator.key")
	k, err := Create(path, "", []byte("correct horse"), false, testNow)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(k.priv.Seed()))) || bytes.Contains(raw, []byte(`"private_key"`)) {
		t.Fatal("sealed key file holds the seed in the clear")
	}
	if _, err := Load(path, nil); !errors.Is(err, ErrNeedPassphrase) {
		t.Fatalf("no passphrase: %v", err)
	}
	if _, err := Load(path, pw("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	l, err := Load(path, pw("correct horse"))
	if err != nil || !l.PublicKey().Equal(k.PublicKey()) || !l.Encrypted {
		t.Fatalf("right passphrase: %v", err)
	}
	tampered := bytes.Replace(raw, []byte(`"n": 32768`), []byte(`"n": 1073741824`), 1)
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, pw("correct horse")); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("tampered scrypt cost: %v", err)
	}
}

// TestDIR_OPID_01_DelegateRoundTrip: operator delegate → the node's file →
// what the node sends verifies (wire.VerifyDelegation, the directory's
// check) for that node only and until not_after.
func TestDIR_OPID_01_DelegateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k, err := Create(filepath.Join(dir, "operator.key"), "", nil, false, testNow)
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.Delegate(testNodeID, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node", DelegationFile)
	if err := WriteDelegation(path, d); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadDelegation(path)
	if err != nil || !ok || got != d {
		t.Fatalf("read back: %v %v %+v", ok, err, got)
	}
	if err := ForNode(got, testNodeID, testNow); err != nil {
		t.Fatal(err)
	}
	if err := ForNode(got, testNodeID, testNow.Add(time.Hour)); !errors.Is(err, wire.ErrDelegationExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := ForNode(got, "0b8e6d5c-1f2a-4c3b-8d4e-5f6a7b8c9d0e", testNow); !errors.Is(err, wire.ErrDelegationNode) {
		t.Fatalf("other node: %v", err)
	}
	if _, err := k.Delegate("not-a-uuid", time.Hour, testNow); err == nil {
		t.Fatal("delegated a non-UUID node id")
	}
	if _, ok, err := ReadDelegation(filepath.Join(dir, "none.json")); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
}

// FuzzLoadKeyFile: any key file content is refused or loaded, never a
// panic, and never loads a key that does not match its public_key.
func FuzzLoadKeyFile(f *testing.F) {
	dir := f.TempDir()
	seedPath := filepath.Join(dir, "seed.key")
	if _, err := Create(seedPath, "x", nil, false, testNow); err != nil {
		f.Fatal(err)
	}
	plain, _ := os.ReadFile(seedPath)
	f.Add(plain)
	f.Add([]byte(`{"kind":"meshnode-operator-key","version":1,"encrypted":{"kdf":"scrypt","n":2,"r":1,"p":1,"salt":"","aead":"xchacha20poly1305","nonce":"","ciphertext":""}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := Load(path, pw("p"))
		if err == nil && k.PublicKeyB64() == "" {
			t.Fatal("loaded an empty key")
		}
	})
}

// FuzzReadDelegation: any delegation file content is read or refused.
func FuzzReadDelegation(f *testing.F) {
	f.Add([]byte(`{"node_id":"` + testNodeID + `","operator_pub":"AAAA","not_after":1,"sig":"AAAA"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), DelegationFile)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if d, ok, err := ReadDelegation(path); ok && err == nil {
			_ = ForNode(d, testNodeID, testNow)
		}
	})
}
