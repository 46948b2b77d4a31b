package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/wire"
)

// The gateway protocol (docs/spec-decisions.md ## agents without a node):
// a program that runs no node reaches the mesh through one meshnode node,
// its bootstrap peer. It opens a libp2p host of its own and sends each
// task on /meshnode/gateway/1.0.0 to that node, framed exactly as on the
// task protocol (HEADERS, CALL; accepted, partials and the terminal
// RESPONSE under the lifecycle profile). The node routes the task as its
// OpenAI API does — itself, mesh peers, directories — with its own
// credentials, so serving nodes never see the program; the gateway engine
// (the daemon's) authorizes the program first. A gateway's RESPONSE names
// the node that served, which is the gateway's word: the program trusts
// the node it chose as its gateway.

// GatewayProtocol is the gateway protocol ID.
const GatewayProtocol protocol.ID = "/meshnode/gateway/1.0.0"

var gatewayCodec = &taskCodec{
	proto:       GatewayProtocol,
	encodeCall:  wire.EncodeCallNative,
	decodeCall:  wire.DecodeCallNative,
	encodeResp:  wire.EncodeResponseNative,
	decodeResp:  wire.DecodeResponseNative,
	closeOnBody: true,
	streams:     true,
	gateway:     true,
}

// gatewayEngine holds the engine ServeGateway installed.
type gatewayEngine struct{ TaskEngine }

// engineFor is the engine that serves streams of codec c.
func (m *Mesh) engineFor(c *taskCodec) TaskEngine {
	if c.gateway {
		if g := m.gateway.Load(); g != nil {
			return g.TaskEngine
		}
	}
	return m.engine
}

// ServeGateway serves the gateway protocol with eng, which must authorize
// every task itself (wire.Caller carries the program's peer and HEADERS
// credentials) and route it. Call after Start; Close removes it.
func (m *Mesh) ServeGateway(eng TaskEngine) error {
	if eng == nil {
		return errors.New("mesh: nil gateway engine")
	}
	if !m.started.Load() {
		return ErrNotStarted
	}
	m.gateway.Store(&gatewayEngine{eng})
	m.h.SetStreamHandler(GatewayProtocol, m.taskHandler(gatewayCodec))
	return nil
}

// GatewayClient sends tasks to one gateway node from a host that runs no
// mesh (no DHT, no gossip, no task service).
type GatewayClient struct {
	m    *Mesh
	peer peer.ID
	own  host.Host // closed by Close when the client opened it
}

// DialGateway opens a libp2p host of its own (a fresh key) for
// a program that runs no node and readies calls to the gateway node at
// addr, a multiaddr ending in /p2p/<peer id> (the `mesh` line `meshnode
// up` prints). Close releases the host.
func DialGateway(ctx context.Context, addr string, logger *slog.Logger) (*GatewayClient, error) {
	ai, err := parseGatewayAddr(addr)
	if err != nil {
		return nil, err
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mesh: gateway client key: %w", err)
	}
	// Random ports on every interface: QUIC dials from its listening
	// socket, so a loopback-only one could not reach a remote gateway.
	// The host serves nothing but libp2p's own identify and ping.
	h, err := NewHost(ctx, priv, HostConfig{ListenAddrs: []string{"/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0"}, ConnLow: 4, ConnHigh: 16})
	if err != nil {
		return nil, err
	}
	g, err := NewGatewayClient(h, ai, logger)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	g.own = h
	if err := h.Connect(ctx, ai); err != nil {
		_ = g.Close()
		return nil, fmt.Errorf("reaching the bootstrap peer %s: %w", ai.ID, err)
	}
	return g, nil
}

// NewGatewayClient calls the gateway node ai from h (which the caller
// owns and closes).
func NewGatewayClient(h host.Host, ai peer.AddrInfo, logger *slog.Logger) (*GatewayClient, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := New(h, Config{Logger: logger}, nil)
	if err != nil {
		return nil, err
	}
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	return &GatewayClient{m: m, peer: ai.ID}, nil
}

// Peer is the gateway node's peer ID.
func (g *GatewayClient) Peer() peer.ID { return g.peer }

// Call sends call to the gateway: streamed when onEvent is set (call
// should require wire.ProfileServiceLifecycle), buffered otherwise. The
// RESPONSE is the gateway's answer (its Error carries a refusal); err is
// set only when none came.
func (g *GatewayClient) Call(ctx context.Context, call *wire.Call, onEvent EventFunc) (*wire.Response, error) {
	if werr := wire.ValidateCall(call); werr != nil {
		return nil, werr
	}
	attempt := *call
	attempt.CallID = newUUID()
	return g.m.callPeer(ctx, g.peer, &attempt, "", gatewayCodec, CallOptions{OnEvent: onEvent})
}

// Close releases the host DialGateway opened.
func (g *GatewayClient) Close() error {
	if g.own == nil {
		return nil
	}
	return g.own.Close()
}

func parseGatewayAddr(addr string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bootstrap peer %q is not a multiaddr (like /ip4/203.0.113.7/udp/4001/quic-v1/p2p/12D3Koo…): %w", addr, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bootstrap peer %q must end in /p2p/<peer id>: %w", addr, err)
	}
	return *ai, nil
}
