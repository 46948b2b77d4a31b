package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// The mesh gateway (mesh.GatewayProtocol; docs/spec-decisions.md ## agents
// without a node): a Go program that runs no node (route.ForAgent with a
// bootstrap peer) sends its tasks to this node, which routes them as its
// OpenAI API does — itself, mesh peers, directories — with this node's
// own credentials. That is why only the operator's programs may use it:
// the program must present this node's own token (auth.node_token, what
// `meshnode token` prints), and the token is taken off the CALL before
// routing, so it never leaves this node.

// setupGateway serves the gateway protocol on the mesh.
func (d *daemon) setupGateway() error {
	if d.mesh == nil {
		return nil
	}
	finders, _ := d.gatewayFinders()
	r, err := route.New(finders, d.gatewayRouteOptions()...)
	if err != nil {
		return fmt.Errorf("building the gateway router: %w", err)
	}
	if err := d.mesh.ServeGateway(gatewayEngine{d: d, r: r}); err != nil {
		return fmt.Errorf("mesh gateway: %w", err)
	}
	return nil
}

// gatewayEngine is the engine of the gateway protocol.
type gatewayEngine struct {
	d *daemon
	r *route.Router
}

// authorized reports whether call carries this node's own token
// (constant-time on digests, as the engine compares it).
func (g gatewayEngine) authorized(call *wire.Call) bool {
	want := g.d.nodeToken()
	if want == "" || call.Auth == nil || call.Auth.NodeToken == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(call.Auth.NodeToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

var errGatewayDenied = wire.NewError(wire.CodeUnauthorized,
	"this node routes tasks only for its operator's programs: present its token (`meshnode token` on the node) as auth.node_token")

// forward is call as it leaves this node: without the caller's token.
func forward(call *wire.Call) *wire.Call {
	c := *call
	c.Auth = nil
	return &c
}

// Execute implements mesh.TaskEngine: a buffered task, routed.
func (g gatewayEngine) Execute(ctx context.Context, call *wire.Call, _ wire.Caller) *wire.Response {
	if !g.authorized(call) {
		g.d.log.Info("gateway task refused", "code", errGatewayDenied.Code)
		return gatewayAnswer(call, nil, errGatewayDenied)
	}
	res, err := g.r.Call(ctx, forward(call), route.Query{})
	return gatewayAnswer(call, res, err)
}

// ExecuteStream implements mesh.StreamEngine: the routed answer's chunks
// are this gateway's partial events, in its own sequence (accepted at 0).
func (g gatewayEngine) ExecuteStream(ctx context.Context, call *wire.Call, _ wire.Caller,
	emit func(wire.Lifecycle, json.RawMessage) error) *wire.Response {
	if !g.authorized(call) {
		g.d.log.Info("gateway task refused", "code", errGatewayDenied.Code)
		resp := gatewayAnswer(call, nil, errGatewayDenied)
		resp.Lifecycle = &wire.Lifecycle{TaskID: call.TaskID, Event: wire.EventFailed, IsFinal: true}
		return resp
	}
	var seq uint64
	send := func(ev string, chunk json.RawMessage) error {
		l := wire.Lifecycle{TaskID: call.TaskID, Sequence: seq, Event: ev}
		seq++
		return emit(l, chunk)
	}
	chunks := func(chunk json.RawMessage) error {
		if seq == 0 {
			if err := send(wire.EventAccepted, nil); err != nil {
				return err
			}
		}
		return send(wire.EventPartial, chunk)
	}
	res, err := g.r.CallStream(ctx, forward(call), route.Query{}, chunks)
	resp := gatewayAnswer(call, res, err)
	ev := wire.EventFailed
	switch resp.Status {
	case wire.StatusSuccess:
		ev = wire.EventCompleted
		if seq == 0 { // a backend that does not stream: accepted, then the whole result
			_ = send(wire.EventAccepted, nil)
		}
	case wire.StatusTimeout:
		ev = wire.EventTimedOut
	}
	resp.Lifecycle = &wire.Lifecycle{TaskID: call.TaskID, Sequence: seq, Event: ev, IsFinal: true}
	return resp
}

// gatewayAnswer is the RESPONSE for the program: the serving node's, or
// the routing error as a failure RESPONSE.
func gatewayAnswer(call *wire.Call, res *route.Result, err error) *wire.Response {
	var resp wire.Response
	if res != nil && res.Response != nil {
		resp = *res.Response
	}
	if err != nil && resp.Error == nil {
		var werr *wire.Error
		if !errors.As(err, &werr) {
			werr = wire.NewError(wire.CodeNoAvailableNode, "the gateway could not route the task")
		}
		resp = wire.Response{Status: wire.StatusError, Result: json.RawMessage("null"), Error: werr, Code: werr.Code}
		if werr.Code == wire.CodeTaskTimeout {
			resp.Status = wire.StatusTimeout
		}
	}
	resp.TaskID, resp.CallID, resp.SessionID, resp.Lifecycle = call.TaskID, call.CallID, call.SessionID, nil
	return &resp
}
