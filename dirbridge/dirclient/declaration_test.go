package dirclient

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

func declaredNode(endpoint string, models ...string) wire.NodeSummary {
	return wire.NodeSummary{NodeID: "n1", Endpoint: endpoint,
		Capabilities: []wire.Capability{{Intent: wire.IntentChat, Models: models}}}
}

// TestDIR_TRUST_01_CheckDeclaration: registered ⊆ health models is
// consistent; a model missing from /iicp/health is divergent; a node that
// does not answer with a health body is unverifiable, not divergent.
func TestDIR_TRUST_01_CheckDeclaration(t *testing.T) {
	health := `{"status":"ok","models":["a","b"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/iicp/health" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, health)
	}))
	defer srv.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, c := range []struct {
		name      string
		body      string
		declared  []string
		reachable bool
		missing   []string
	}{
		{"consistent", `{"status":"ok","models":["a","b"]}`, []string{"a"}, true, nil},
		{"divergent", `{"status":"ok","models":["a"]}`, []string{"a", "b", "b"}, true, []string{"b"}},
		{"no models field", `{"status":"ok"}`, []string{"a"}, false, nil},
		{"not JSON", `<html>`, []string{"a"}, false, nil},
	} {
		health = c.body
		d, err := CheckDeclaration(t.Context(), hc, declaredNode(srv.URL, c.declared...))
		if err != nil || d.Reachable != c.reachable || !slices.Equal(d.Missing, c.missing) || d.Divergent() != (len(c.missing) > 0) {
			t.Errorf("%s: %+v %v", c.name, d, err)
		}
	}
	srv.Close()
	if d, err := CheckDeclaration(t.Context(), hc, declaredNode(srv.URL, "a")); err == nil || d.Divergent() {
		t.Errorf("unreachable node: %+v %v", d, err)
	}
}

// FuzzHealthDeclaration: any /iicp/health body from a peer yields a
// verdict without panicking, and only models the node registered can be
// reported missing (seeds in testdata/fuzz/FuzzHealthDeclaration).
func FuzzHealthDeclaration(f *testing.F) {
	f.Add([]byte(`{"status":"ok","models":["a"]}`))
	f.Add([]byte(`{"models":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := compareDeclaration(declaredNode("http://x", "a", "b"), raw)
		for _, m := range d.Missing {
			if m != "a" && m != "b" {
				t.Fatalf("reported a model the node never registered: %q", m)
			}
		}
		if !d.Reachable && len(d.Missing) > 0 {
			t.Fatal("an unverifiable node reported divergent")
		}
	})
}
