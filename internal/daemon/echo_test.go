package daemon

import (
	"strings"
	"testing"
)

// TestEchoBackendRoutes (issue 11 item 6): outside dev mode the echo
// backend is served only under the x.meshnode vendor intent.
func TestEchoBackendRoutes(t *testing.T) {
	for _, dev := range []bool{false, true} {
		b, err := echoBackend(dev)
		if err != nil {
			t.Fatal(err)
		}
		llm := false
		for _, c := range b.router.Capabilities() {
			llm = llm || strings.HasPrefix(c.Intent, "urn:iicp:intent:llm:")
			if !dev && c.Intent != EchoIntent {
				t.Fatalf("non-dev echo serves %s", c.Intent)
			}
		}
		if llm != dev {
			t.Fatalf("dev=%v: llm intents served=%v", dev, llm)
		}
	}
}
