package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

// TestNodeKeyBinding: a binding verifies until not_after; any edited
// field, a signature by another key, an unknown signer and a lifetime
// that ends before it starts are refused.
func TestNodeKeyBinding(t *testing.T) {
	_, signer, _ := ed25519.GenerateKey(rand.Reader)
	newPub, _, _ := ed25519.GenerateKey(rand.Reader)
	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	b := SignNodeKeyBinding(signer, BindingSignerNode, id, newPub, 1000, 2000)
	np, sp, err := VerifyNodeKeyBinding(&b, 1500)
	if err != nil || !np.Equal(newPub) || !sp.Equal(signer.Public()) {
		t.Fatalf("verify: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*NodeKeyBinding)
		now    int64
		want   error
	}{
		{"expired", func(*NodeKeyBinding) {}, 2000, ErrBindingExpired},
		{"other node", func(x *NodeKeyBinding) { x.NodeID = "0b8e6d5c-1f2a-4c3b-8d4e-5f6a7b8c9d0e" }, 1500, ErrBindingSignature},
		{"later not_after", func(x *NodeKeyBinding) { x.NotAfter = 9000 }, 1500, ErrBindingSignature},
		{"signer kind swapped", func(x *NodeKeyBinding) { x.Signer = BindingSignerOperator }, 1500, ErrBindingSignature},
		{"unknown signer", func(x *NodeKeyBinding) { x.Signer = "root" }, 1500, ErrBindingMalformed},
		{"ends before it starts", func(x *NodeKeyBinding) { x.NotAfter = 999 }, 500, ErrBindingMalformed},
		{"not a uuid", func(x *NodeKeyBinding) { x.NodeID = "node-1" }, 1500, ErrBindingMalformed},
		{"short key", func(x *NodeKeyBinding) { x.NodePub = "AAAA" }, 1500, ErrBindingMalformed},
	}
	for _, c := range cases {
		x := b
		c.mutate(&x)
		if _, _, err := VerifyNodeKeyBinding(&x, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)
	forged := SignNodeKeyBinding(mallory, BindingSignerNode, id, newPub, 1000, 2000)
	forged.SignerPub = b.SignerPub
	if _, _, err := VerifyNodeKeyBinding(&forged, 1500); !errors.Is(err, ErrBindingSignature) {
		t.Fatalf("forged: %v", err)
	}
}
