package mesh

import (
	"context"
	"testing"
	"time"
)

func TestTwoNodesAdvertAndCall(t *testing.T) {
	nodes := startCluster(t, 2, false, func(int) bool { return true })
	waitFor(t, 5*time.Second, "adverts", func() bool { return allServersKnown(nodes, func(int) bool { return true }) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, info, err := nodes[1].m.Call(ctx, testCall(), CallOptions{ConsumerToken: "secret-token"})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if resp.Status != "success" || info.Peer != nodes[0].h.ID() || info.Attempts != 1 {
		t.Fatalf("resp %+v info %+v", resp, info)
	}
	c := nodes[0].engine.caller()
	if c.PeerID != nodes[1].h.ID().String() || c.Transport != "quic" || c.ConsumerToken != "secret-token" || c.RemoteIP != "127.0.0.1" {
		t.Fatalf("caller %+v", c)
	}
}
