package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// TestTwoNodesAdvertAndCall: a call over each task protocol reaches the
// serving engine with the caller's peer ID, transport, address and
// consumer token, and returns the engine's result.
func TestTwoNodesAdvertAndCall(t *testing.T) {
	nodes := startCluster(t, 2, false, func(i int) bool { return i == 0 })
	waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, func(i int) bool { return i == 0 }) })
	for _, useJSON := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		call := testCall()
		resp, info, err := nodes[1].m.Call(ctx, call, CallOptions{ConsumerToken: "secret-token", JSON: useJSON})
		cancel()
		if err != nil {
			t.Fatalf("json=%v: call: %v", useJSON, err)
		}
		if resp.Status != wire.StatusSuccess || resp.TaskID != call.TaskID || info.Peer != nodes[0].h.ID() || info.Attempts != 1 {
			t.Fatalf("json=%v: resp %+v info %+v", useJSON, resp, info)
		}
		if !sameJSON(t, call.Payload, resp.Result) {
			t.Fatalf("json=%v: result %s, want %s", useJSON, resp.Result, call.Payload)
		}
		c := nodes[0].engine.caller()
		if c.PeerID != nodes[1].h.ID().String() || c.Transport != "quic" || c.ConsumerToken != "secret-token" || c.RemoteIP != "127.0.0.1" {
			t.Fatalf("json=%v: caller %+v", useJSON, c)
		}
	}
}
