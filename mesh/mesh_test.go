package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// TestTwoNodesAdvertAndCall: a call over each task protocol reaches the
// serving engine with the caller's peer ID, transport, address and
// consumer token (minted per peer by CallOptions.Credential, given the
// peer's advertised node_id), and returns the engine's result.
func TestTwoNodesAdvertAndCall(t *testing.T) {
	nodes := startCluster(t, 2, false, func(i int) bool { return i == 0 })
	waitFor(t, 15*time.Second, "adverts", func() bool { return allServersKnown(nodes, func(i int) bool { return i == 0 }) })
	for _, useJSON := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		call := testCall()
		var asked []string
		cred := func(_ context.Context, p peer.ID, nodeID string) (string, error) {
			asked = append(asked, p.String()+"/"+nodeID)
			return "secret-token-for-" + nodeID, nil
		}
		resp, info, err := nodes[1].m.Call(ctx, call, CallOptions{Credential: cred, JSON: useJSON})
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
		server := nodes[0].engine.name
		if len(asked) != 1 || asked[0] != nodes[0].h.ID().String()+"/"+server {
			t.Fatalf("json=%v: credentials asked for %v, want the serving peer and its node_id %s", useJSON, asked, server)
		}
		c := nodes[0].engine.caller()
		if c.PeerID != nodes[1].h.ID().String() || c.Transport != "quic" || c.ConsumerToken != "secret-token-for-"+server || c.RemoteIP != "127.0.0.1" {
			t.Fatalf("json=%v: caller %+v", useJSON, c)
		}
	}
}
