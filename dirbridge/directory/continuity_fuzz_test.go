package directory

import (
	"encoding/json"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// FuzzNodeKeyBinding: any node_key_binding JSON decodes into a verdict
// without panicking; random input never verifies.
func FuzzNodeKeyBinding(f *testing.F) {
	f.Add([]byte(`{"node_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","node_pub":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","signer":"operator","signer_pub":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","issued_at":1,"not_after":4102444800,"sig":"AAAA"}`))
	f.Add([]byte(`{"signer":"node","issued_at":-1,"not_after":-2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b *wire.NodeKeyBinding
		if json.Unmarshal(raw, &b) != nil {
			return
		}
		if _, _, err := wire.VerifyNodeKeyBinding(b, 1_800_000_000); err == nil {
			t.Fatal("fuzzed binding verified")
		}
	})
}

// FuzzOperatorKeyRotate: any key-rotation body decodes into a verdict
// without panicking; random input never verifies.
func FuzzOperatorKeyRotate(f *testing.F) {
	f.Add([]byte(`{"action":"key_rotate","operator_pub":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","new_operator_pub":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","nonce":"n","ts":1,"sig":"AAAA","new_key_sig":"AAAA"}`))
	f.Add([]byte(`{"action":"key_rotate_successor"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r *wire.OperatorKeyRotate
		if json.Unmarshal(raw, &r) != nil {
			return
		}
		if _, _, err := wire.VerifyOperatorKeyRotate(r); err == nil {
			t.Fatal("fuzzed rotation verified")
		}
	})
}
