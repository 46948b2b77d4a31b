package dirclient

import (
	"encoding/json"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

func testCall() *wire.Call {
	return &wire.Call{TaskID: NewUUID(), Intent: wire.IntentChat, Payload: json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000}}
}

func TestNewUUIDIsV4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u := NewUUID()
		if !wire.ValidUUIDv4(u) || seen[u] {
			t.Fatalf("bad or repeated uuid %q", u)
		}
		seen[u] = true
	}
}
