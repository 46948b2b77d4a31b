package identity

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
)

// TestRotateKeepsNodeID: a rotated key goes by the old node_id through
// its binding, on disk too (LoadNode); the mesh-facing derived node_id is
// the new key's; a binding for another key is refused.
func TestRotateKeepsNodeID(t *testing.T) {
	p, err := paths.Resolve(t.TempDir(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	old, _, err := LoadNode(p)
	if err != nil {
		t.Fatal(err)
	}
	next, err := old.Rotate(time.Unix(1000, 0), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if next.NodeID() != old.NodeID() || next.DerivedNodeID() == old.NodeID() {
		t.Fatalf("rotated node ids: %s %s", next.NodeID(), next.DerivedNodeID())
	}
	b, _ := next.Binding()
	if err := WriteBinding(p.NodeKeyBinding, b); err != nil {
		t.Fatal(err)
	}
	if err := next.Save(p.IdentityKey); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadNode(p)
	if err != nil || got.NodeID() != old.NodeID() {
		t.Fatalf("reloaded: %v", err)
	}
	if err := old.WithBinding(b); !errors.Is(err, ErrBindingKey) {
		t.Fatalf("binding of another key: %v", err)
	}
	if err := old.Save(p.IdentityKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadNode(p); !errors.Is(err, ErrBindingKey) {
		t.Fatalf("home whose key the binding does not name: %v", err)
	}
}

// FuzzParseBinding: any binding file content is parsed or refused, and a
// parsed one is applied to a key only when it verifies for it.
func FuzzParseBinding(f *testing.F) {
	id, _ := Generate()
	next, _ := id.Rotate(time.Unix(1000, 0), time.Hour)
	b, _ := next.Binding()
	raw, _ := json.Marshal(b)
	f.Add(raw)
	f.Add([]byte(`{"node_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","signer":"node"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		pb, err := ParseBinding(in)
		if err != nil {
			return
		}
		if next.WithBinding(pb) == nil && next.NodeID() != pb.NodeID {
			t.Fatal("applied a binding without taking its node_id")
		}
	})
}
