package identity

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/internal/paths"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestLoadOrCreateIsStableAndPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	id1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first run: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}
	id2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second run: created=%v err=%v", created, err)
	}
	if id1.NodeID() != id2.NodeID() {
		t.Fatalf("node id changed across loads: %s vs %s", id1.NodeID(), id2.NodeID())
	}
	p1, _ := id1.PeerID()
	p2, _ := id2.PeerID()
	if p1 != p2 || p1 == "" {
		t.Fatalf("peer id changed: %s vs %s", p1, p2)
	}
	if !uuidV4.MatchString(id1.NodeID()) {
		t.Fatalf("node id %q is not a UUID v4", id1.NodeID())
	}
}

// The same stored bytes must work for stdlib ed25519 and libp2p.
func TestKeyUsableByStdlibAndLibp2p(t *testing.T) {
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("meshnode")
	sig := ed25519.Sign(id.Private(), msg)
	lk, err := crypto.UnmarshalEd25519PrivateKey(id.Private())
	if err != nil {
		t.Fatal(err)
	}
	ok, err := lk.GetPublic().Verify(msg, sig)
	if err != nil || !ok {
		t.Fatalf("libp2p could not verify a stdlib signature: %v", err)
	}
	pid, err := peer.IDFromPrivateKey(lk)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := id.PeerID()
	if pid != want {
		t.Fatalf("peer id mismatch %s vs %s", pid, want)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	id, _ := Generate()
	loose := filepath.Join(dir, "loose.key")
	if err := id.Save(loose); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		// A key other users can read is refused, not silently used.
		{"world readable", loose, paths.ErrInsecure},
		// Garbage is an error, never a freshly generated replacement.
		{"garbage", garbage, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadOrCreate(tc.path)
			if err == nil {
				t.Fatal("expected error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNodeIDDiffersPerKey(t *testing.T) {
	a, _ := Generate()
	b, _ := Generate()
	if a.NodeID() == b.NodeID() {
		t.Fatal("two keys produced the same node id")
	}
}
