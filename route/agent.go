package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// AgentConfig is what a Go program that runs no node needs to run tasks on
// the mesh (ForAgent).
type AgentConfig struct {
	// Directory is the directory's base URL. Exactly one of Directory and
	// Bootstrap is required.
	Directory string
	// Bootstrap is a meshnode node to reach the mesh through, as a
	// libp2p multiaddr ending in /p2p/<peer id> (the `mesh` line
	// `meshnode up` prints). The program opens a libp2p host of its own and sends
	// every task to that node (the gateway protocol), which routes it —
	// itself, its mesh peers, its directories — with its own credentials.
	// NodeToken must then be that node's token (`meshnode token` on it):
	// a node spends its credentials only for its operator's programs.
	Bootstrap string
	// NodeToken, with Directory, is the node token of a node registered with
	// Directory (`meshnode token` prints a running node's): the directory
	// then issues a consumer token for each target node (iicp-dir.md
	// §3.12), which is how a caller is authorized by nodes it does not
	// operate. Without it, only nodes that accept tasks without a
	// credential answer; the others refuse with unauthorized, returned as
	// an error. LOG-FORBIDDEN.
	NodeToken string
	// HTTP posts tasks (nil: no overall timeout; the context carries the
	// task's deadline). Directory requests use their own client.
	HTTP *http.Client
	// UserAgent names the program to the directory.
	UserAgent string
}

// ForAgent builds the Router a Go program without a node uses.
//
// With a Bootstrap peer, every task goes through that node (the gateway
// protocol, authorized by cfg.NodeToken); Close the Router to release the
// libp2p host it opened.
//
// With a Directory, routes come from the directory's dispatch tickets
// (TicketFinder; discover on directories without tickets), tasks are sent
// with POST /v1/task sealed to each node's IICP-CX key, with a consumer
// token per target when cfg.NodeToken is set.
// With a NodeToken, the directory is asked once (GET /v1/me) whether it
// accepts it, so a wrong token is an error here and not a silent refusal
// on every call.
//
// Router.Call returns Go errors: a final failure RESPONSE (unauthorized,
// validation_error, backend_error…) comes back as its *wire.Error, never
// as err == nil.
func ForAgent(ctx context.Context, cfg AgentConfig, opts ...Option) (*Router, error) {
	switch {
	case cfg.Directory != "" && cfg.Bootstrap != "":
		return nil, errors.New("route: set AgentConfig.Directory or AgentConfig.Bootstrap, not both")
	case cfg.Bootstrap != "":
		return forBootstrap(ctx, cfg, opts...)
	case cfg.Directory == "":
		return nil, errors.New("route: AgentConfig needs a Directory (a directory URL such as https://dir.example) or a Bootstrap peer (a meshnode node's multiaddr)")
	}
	copts := []dirclient.Option{}
	if cfg.UserAgent != "" {
		copts = append(copts, dirclient.WithUserAgent(cfg.UserAgent))
	}
	dc, err := dirclient.New(cfg.Directory, copts...)
	if err != nil {
		return nil, err
	}
	base := []Option{WithTransport(PathHTTP, HTTPTransport{HTTP: cfg.HTTP})}
	if cfg.NodeToken != "" {
		if _, err := dc.Me(ctx, cfg.NodeToken); err != nil {
			if errors.Is(err, dirclient.ErrUnauthorized) {
				return nil, fmt.Errorf("the directory %s refused AgentConfig.NodeToken (401): use the token of a node registered there (`meshnode token`)", dc.URL())
			}
			return nil, fmt.Errorf("checking AgentConfig.NodeToken with the directory: %w", err)
		}
		base = append(base, WithCredential(ConsumerTokens(dc, cfg.NodeToken)))
	}
	return New([]Finder{&TicketFinder{C: dc}}, append(base, opts...)...)
}

// forBootstrap is ForAgent through a bootstrap node's gateway.
func forBootstrap(ctx context.Context, cfg AgentConfig, opts ...Option) (*Router, error) {
	if cfg.NodeToken == "" {
		return nil, errors.New("route: AgentConfig.Bootstrap needs NodeToken, the bootstrap node's token (`meshnode token` on that node): it routes tasks only for its operator's programs")
	}
	g, err := mesh.DialGateway(ctx, cfg.Bootstrap, nil)
	if err != nil {
		return nil, fmt.Errorf("route: %w", err)
	}
	base := []Option{WithTransport(PathGateway, GatewayTransport{G: g, NodeToken: cfg.NodeToken})}
	r, err := New([]Finder{GatewayFinder{G: g}}, append(base, opts...)...)
	if err != nil {
		_ = g.Close()
		return nil, err
	}
	r.closers = append(r.closers, g.Close)
	return r, nil
}

// ConsumerTokens is a CredentialFunc that asks dc, authenticated by
// nodeToken, for a single-use consumer token for each target node and
// intent (iicp-dir.md §3.12). A target without a node_id gets none.
func ConsumerTokens(dc *dirclient.Client, nodeToken string) CredentialFunc {
	return func(ctx context.Context, t Target, intent string) (string, error) {
		if t.NodeID == "" {
			return "", nil
		}
		return dc.ConsumerToken(ctx, nodeToken, t.NodeID, intent)
	}
}

// DefaultTaskTimeout is NewTask's budget when timeout is 0.
const DefaultTaskTimeout = 60 * time.Second

// NewTask builds a CALL for intent with payload (any value that encodes to
// a JSON object), a fresh task_id and timeout as constraints.timeout_ms
// (0: DefaultTaskTimeout). It is validated as Router.Call would.
func NewTask(intent string, payload any, timeout time.Duration) (*wire.Call, error) {
	var raw json.RawMessage
	switch p := payload.(type) {
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("route: encoding the payload: %w", err)
		}
		raw = b
	}
	if timeout <= 0 {
		timeout = DefaultTaskTimeout
	}
	call := &wire.Call{TaskID: newUUID(), Intent: intent, Payload: raw,
		Constraints: wire.Constraints{TimeoutMs: timeout.Milliseconds()}}
	if werr := wire.ValidateCall(call); werr != nil {
		return nil, werr
	}
	return call, nil
}
