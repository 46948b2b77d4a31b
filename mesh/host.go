package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Host defaults. Home routers keep small NAT tables, so the connection
// limits are far below libp2p's 160/192 (kubo's router-killing history).
const (
	DefaultConnLow   = 32
	DefaultConnHigh  = 64
	DefaultConnGrace = 30 * time.Second
	// DefaultHostMemory is the resource manager's memory budget for libp2p.
	DefaultHostMemory = 256 << 20
	// DefaultHostFDs bounds file descriptors libp2p may hold.
	DefaultHostFDs = 512
	// DefaultListenPort is meshnode's default libp2p port (UDP for QUIC and
	// TCP for the fallback); a stable port lets operators forward it.
	DefaultListenPort = 9485
	// taskStreamsPerPeer bounds the task streams one peer may hold open in
	// each direction. It is twice callStreamsPerPeer, the client's own cap:
	// the rest is headroom for streams whose RESPONSE is out but whose
	// scope is not yet released, so an honest caller is never refused by
	// the resource manager. Refusing work beyond max_concurrent is the
	// engine's job (capacity_exceeded, iicp-semantics.md §2.2), which
	// answers with an IICP error instead of a bare stream reset.
	taskStreamsPerPeer = 2 * callStreamsPerPeer
	// taskStreamsTotal bounds concurrent task streams overall; NewHost
	// raises it to twice HostConfig.MaxConcurrent for larger nodes.
	taskStreamsTotal = 1024
	// muxStreamMemory is what the TCP fallback's muxer (yamux) reserves per
	// stream for its receive window; QUIC streams reserve nothing. The task
	// protocol memory limits are sized in streams of this much.
	muxStreamMemory = 256 << 10
)

// HostConfig configures the production libp2p host built by NewHost.
type HostConfig struct {
	// ListenAddrs are multiaddrs to listen on. Empty means QUIC-v1 and TCP on
	// DefaultListenPort for IPv4 and IPv6, QUIC listed first.
	ListenAddrs []string
	// ConnLow and ConnHigh are the connection manager watermarks.
	ConnLow, ConnHigh int
	// ConnGrace protects new connections from trimming for this long.
	ConnGrace time.Duration
	// Memory and FDs bound the resource manager.
	Memory int64
	FDs    int
	// NAT enables UPnP/NAT-PMP port mapping, the relay client and hole
	// punching (DCUtR). Off means none of them runs.
	NAT bool
	// Registerer receives libp2p's Prometheus metrics; nil disables them
	// (and the resource manager's per-event stats with them).
	Registerer prometheus.Registerer
	// MaxConcurrent is the node's limits.max_concurrent. The resource
	// manager admits at least twice as many task streams in total, so
	// the engine, not a stream reset, refuses excess work. Zero: 512.
	MaxConcurrent int
}

func (c *HostConfig) setDefaults() {
	if len(c.ListenAddrs) == 0 {
		p := DefaultListenPort
		c.ListenAddrs = []string{
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", p),
			fmt.Sprintf("/ip6/::/udp/%d/quic-v1", p),
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", p),
			fmt.Sprintf("/ip6/::/tcp/%d", p),
		}
	}
	if c.ConnLow == 0 {
		c.ConnLow = DefaultConnLow
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = DefaultConnHigh
	}
	if c.ConnGrace == 0 {
		c.ConnGrace = DefaultConnGrace
	}
	if c.Memory == 0 {
		c.Memory = DefaultHostMemory
	}
	if c.FDs == 0 {
		c.FDs = DefaultHostFDs
	}
}

// NewHost builds the production host: QUIC-v1 and TCP (dialled TCP first
// on loopback and private networks, QUIC first elsewhere: lanTCPDialRanker), the node's Ed25519
// identity, conservative connection and resource limits, and NAT traversal
// only when cfg.NAT is set. ctx is accepted for symmetry with other
// constructors; the host lives until the caller closes it.
func NewHost(ctx context.Context, priv crypto.PrivKey, cfg HostConfig) (host.Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if priv == nil {
		return nil, errors.New("mesh: new host: nil identity key")
	}
	if priv.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("mesh: new host: identity key type %v, want Ed25519", priv.Type())
	}
	cfg.setDefaults()
	if cfg.ConnLow > cfg.ConnHigh {
		return nil, fmt.Errorf("mesh: new host: conn low %d above high %d", cfg.ConnLow, cfg.ConnHigh)
	}
	listen, err := parseListenAddrs(cfg.ListenAddrs)
	if err != nil {
		return nil, err
	}
	if err := CheckListenAddrs(cfg.ListenAddrs); err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(cfg.ConnGrace))
	if err != nil {
		return nil, fmt.Errorf("mesh: new host: connection manager: %w", err)
	}
	rm, err := newResourceManager(cfg.Memory, cfg.FDs, cfg.MaxConcurrent, cfg.Registerer != nil)
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("mesh: new host: resource manager: %w", err)
	}
	// TCP port reuse off: with SO_REUSEPORT a second node binds the same
	// mesh port without error and dials reach the wrong node. QUIC keeps
	// its shared socket (dials leave from the listening port; turning that
	// off leaks a socket per dial in quic-go), so every fixed port was
	// checked free with a plain bind above: a taken port is a start-up
	// error, not a warning libp2p logs while it drops the address.
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(quic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.UserAgent("meshnode"),
		libp2p.DialRanker(lanTCPDialRanker),
	}
	if cfg.NAT {
		opts = append(opts, libp2p.NATPortMap(), libp2p.EnableRelay(), libp2p.EnableHolePunching())
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close()
		return nil, fmt.Errorf("mesh: new host: %w", err)
	}
	// libp2p drops an address it cannot bind with a warning when another
	// one succeeds; the port checks above make that a race, caught here.
	if got := len(h.Network().ListenAddresses()); got < len(listen) {
		_ = h.Close()
		return nil, fmt.Errorf("%w: %d of %d listen addresses bound (%v)", ErrListen, got, len(listen), cfg.ListenAddrs)
	}
	return h, nil
}

// parseListenAddrs checks every listen multiaddr up front.
func parseListenAddrs(addrs []string) ([]ma.Multiaddr, error) {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("mesh: listen address %q is not a multiaddr (e.g. /ip4/0.0.0.0/udp/9485/quic-v1): %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// CheckListenAddrs reports the first listen multiaddr that is malformed
// or whose fixed port another process holds (ErrListen), before any libp2p
// host tries it: for hosts built elsewhere, such as a directory's gossip host.
func CheckListenAddrs(addrs []string) error {
	listen, err := parseListenAddrs(addrs)
	if err != nil {
		return err
	}
	for _, a := range listen {
		if err := portFree(a); err != nil {
			return listenError(a, err)
		}
	}
	return nil
}

// portFree binds the fixed TCP or UDP port of a listen address without
// SO_REUSEPORT and lets it go: a socket another process holds, even with
// SO_REUSEPORT, makes that bind fail with EADDRINUSE.
func portFree(a ma.Multiaddr) error {
	ip, err := a.ValueForProtocol(ma.P_IP4)
	if err != nil {
		if ip, err = a.ValueForProtocol(ma.P_IP6); err != nil {
			return nil // a DNS or other address: libp2p reports it
		}
	}
	if port, err := a.ValueForProtocol(ma.P_UDP); err == nil && port != "0" {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, port))
		if err != nil {
			return err
		}
		return c.Close()
	}
	if port, err := a.ValueForProtocol(ma.P_TCP); err == nil && port != "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			return err
		}
		return l.Close()
	}
	return nil
}

// ErrListen marks a mesh listen address that could not be bound.
var ErrListen = errors.New("mesh: cannot listen")

// listenError names the address and, for a taken port, the cause in words.
func listenError(a ma.Multiaddr, err error) error {
	// The swarm folds listen errors into text, so the errno may be lost.
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return fmt.Errorf("%w: %s is in use by another process", ErrListen, a)
	}
	return fmt.Errorf("%w on %s: %w", ErrListen, a, err)
}

// newResourceManager scales libp2p's default limits to the given budget
// and adds limits for the task protocols. Without metrics the resource
// manager's stats reporter is off too: it formats a timestamp for every
// scope change, several per task stream.
func newResourceManager(memory int64, fds, maxConcurrent int, metrics bool) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	total := max(taskStreamsTotal, 2*maxConcurrent)
	// Memory only binds on the TCP fallback (muxStreamMemory per stream):
	// a quarter of the total, and per peer the client cap and half again.
	for _, id := range taskProtocols {
		limits.AddProtocolLimit(id,
			rcmgr.BaseLimit{StreamsInbound: total, StreamsOutbound: total, Streams: 2 * total, Memory: int64(total/4) * muxStreamMemory},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(id,
			rcmgr.BaseLimit{StreamsInbound: taskStreamsPerPeer, StreamsOutbound: taskStreamsPerPeer, Streams: 2 * taskStreamsPerPeer, Memory: int64(callStreamsPerPeer+callStreamsPerPeer/2) * muxStreamMemory},
			rcmgr.BaseLimitIncrease{})
	}
	// libp2p's system scope admits 1280 inbound streams at the default
	// budget, room for taskStreamsTotal; a larger node raises it to match.
	if extra := total - taskStreamsTotal; extra > 0 {
		limits.SystemBaseLimit.StreamsInbound += extra
		limits.SystemBaseLimit.Streams += 2 * extra
	}
	opts := []rcmgr.Option{}
	if !metrics {
		opts = append(opts, rcmgr.WithMetricsDisabled())
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(memory, fds)), opts...)
}
