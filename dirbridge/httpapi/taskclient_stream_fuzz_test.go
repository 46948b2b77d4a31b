package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// FuzzReadEvents: any event stream a node sends ends in a terminal
// RESPONSE or an error, never a panic, and events reach the consumer only
// in sequence.
func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("event: accepted\ndata: {\"task_id\":\"t\",\"lifecycle\":{\"task_id\":\"t\",\"sequence\":0,\"event\":\"accepted\",\"is_final\":false}}\n\n" +
		"event: partial\ndata: {\"task_id\":\"t\",\"status\":\"partial\",\"result\":{\"choices\":[]},\"metrics\":{\"latency_ms\":0,\"tokens_used\":0},\"error\":null,\"lifecycle\":{\"task_id\":\"t\",\"sequence\":1,\"event\":\"partial\",\"is_final\":false}}\n\n" +
		"event: completed\ndata: {\"task_id\":\"t\",\"status\":\"success\",\"result\":null,\"metrics\":{\"latency_ms\":1,\"tokens_used\":3},\"error\":null,\"lifecycle\":{\"task_id\":\"t\",\"sequence\":2,\"event\":\"completed\",\"is_final\":true}}\n\n"))
	f.Add([]byte("event: partial\ndata: {}\n\n"))
	f.Add([]byte(": comment\n\nevent: accepted\ndata: {\"lifecycle\":null}\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var last uint64
		first := true
		r, err := readEvents(bytes.NewReader(b), nil, wire.NewLifecycleReceiver("t"), "t", func(l wire.Lifecycle, _ json.RawMessage) error {
			if !first && l.Sequence <= last {
				t.Fatalf("event %d after %d", l.Sequence, last)
			}
			first, last = false, l.Sequence
			return nil
		})
		if err == nil && (r == nil || r.Lifecycle == nil || !r.Lifecycle.IsFinal) {
			t.Fatalf("no terminal RESPONSE: %+v", r)
		}
	})
}
