package directory

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/meshnode/meshnode/wire"
)

// TestPrefixLookupSharedPrefix: a public id prefix resolves only while one
// node has it; a second node with the same prefix makes it ambiguous, and
// deregistering either makes it resolve to the other again.
func TestPrefixLookupSharedPrefix(t *testing.T) {
	ix := newIndex()
	a, b := "abcdef01-0000-4000-8000-000000000001", "abcdef01-0000-4000-8000-000000000002"
	ix.put(&NodeRecord{NodeID: a}, &nodeState{}, Credential{}, false)
	if e := ix.byPrefixUnique("abcdef01"); e == nil || e.rec.NodeID != a {
		t.Fatalf("one node: %v", e)
	}
	ix.put(&NodeRecord{NodeID: b}, &nodeState{}, Credential{}, false)
	ix.put(&NodeRecord{NodeID: b}, nil, Credential{}, false) // re-registration: still two
	if e := ix.byPrefixUnique("abcdef01"); e != nil {
		t.Fatalf("shared prefix resolved to %s", e.rec.NodeID)
	}
	ix.remove(a)
	if e := ix.byPrefixUnique("abcdef01"); e == nil || e.rec.NodeID != b {
		t.Fatalf("after removing a: %v", e)
	}
	ix.remove(b)
	if e := ix.byPrefixUnique("abcdef01"); e != nil || len(ix.byPrefix)+len(ix.prefixShared) != 0 {
		t.Fatalf("after removing both: %v, %d+%d keys", e, len(ix.byPrefix), len(ix.prefixShared))
	}
}

// TestInternSharesEqualStringsAndCaps: equal record strings come out as
// one shared copy with unchanged values; past the cap a new value is kept
// as given (memory bounded, values never altered).
func TestInternSharesEqualStrings(t *testing.T) {
	tab := newStrTable()
	mk := func() *NodeRecord {
		return &NodeRecord{Region: string([]byte("eu-central")), Capabilities: []wire.Capability{
			{Intent: string([]byte("urn:iicp:intent:llm:chat:v1")), Models: []string{string([]byte("llama3"))}}}}
	}
	a, b := mk(), mk()
	tab.internRecord(a)
	tab.internRecord(b)
	if a.Region != "eu-central" || unsafe.StringData(a.Region) != unsafe.StringData(b.Region) ||
		unsafe.StringData(a.Capabilities[0].Intent) != unsafe.StringData(b.Capabilities[0].Intent) ||
		unsafe.StringData(a.Capabilities[0].Models[0]) != unsafe.StringData(b.Capabilities[0].Models[0]) {
		t.Fatal("equal strings not shared")
	}
	long := strings.Repeat("x", 300)
	if v := tab.intern(long); v != long || unsafe.StringData(v) != unsafe.StringData(long) {
		t.Fatal("a long value was interned")
	}
}
