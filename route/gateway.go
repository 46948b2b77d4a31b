package route

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// A program that runs no node can reach the mesh through a meshnode node
// of its operator, its bootstrap peer (ForAgent with AgentConfig.Bootstrap;
// docs/spec-decisions.md ## agents without a node): every task goes to
// that node on the gateway protocol (mesh.GatewayProtocol), authorized by
// the node's own token, and the node routes it with its own credentials.

// GatewayFinder offers the one gateway node for every query.
type GatewayFinder struct{ G *mesh.GatewayClient }

// Find implements Finder.
func (f GatewayFinder) Find(context.Context, Query) ([]Target, error) {
	return []Target{{Path: PathGateway, PeerID: f.G.Peer().String()}}, nil
}

// GatewayTransport sends tasks to a gateway node, presenting NodeToken
// (the gateway node's own token, CALL auth.node_token; LOG-FORBIDDEN).
type GatewayTransport struct {
	G         *mesh.GatewayClient
	NodeToken string
}

// Send implements Transport.
func (tr GatewayTransport) Send(ctx context.Context, _ Target, call *wire.Call, _ string) (*wire.Response, Sent, error) {
	return tr.send(ctx, call, nil)
}

// SendStream implements StreamTransport: the gateway streams the answer
// as it gets it from the node that serves the task.
func (tr GatewayTransport) SendStream(ctx context.Context, _ Target, call *wire.Call, _ string, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	return tr.send(ctx, call, ev)
}

func (tr GatewayTransport) send(ctx context.Context, call *wire.Call, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	c := *call
	c.Auth = &wire.Auth{NodeToken: tr.NodeToken}
	var onEvent mesh.EventFunc
	if ev != nil {
		onEvent = func(l wire.Lifecycle, chunk json.RawMessage) error { return ev(l, chunk) }
	}
	resp, err := tr.G.Call(ctx, &c, onEvent)
	var werr *wire.Error
	if err != nil && errors.As(err, &werr) && resp == nil {
		return nil, Sent{}, NotSent(err)
	}
	return resp, Sent{}, err
}
