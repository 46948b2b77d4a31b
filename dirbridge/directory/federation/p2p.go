package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// GossipConfig configures the small libp2p host that carries the seed's
// event topic (`meshnode directory --gossip on --p2p ADDR --gossip-peer ADDR`).
// It is the federation's own host, not the mesh's: a directory needs no DHT
// and no task protocol, only GossipSub between the seed and its replicas.
type GossipConfig struct {
	// Listen are multiaddrs, e.g. /ip4/0.0.0.0/udp/4011/quic-v1 and
	// /ip4/0.0.0.0/tcp/4011. Empty: loopback TCP and QUIC on random ports.
	Listen []string
	// Peers are bootstrap multiaddrs with /p2p/<id> (a replica lists the
	// seed's host). They are kept connected.
	Peers []string
	// KeyFile holds the host's libp2p identity, created (0600) when missing,
	// so the seed's multiaddr stays the same across restarts. Empty: a new
	// identity each start.
	KeyFile string
}

// Gossip host bounds.
const (
	gossipConnLow, gossipConnHigh = 16, 64           // a seed and its replicas, plus slack
	gossipRedial                  = 15 * time.Second // how often lost bootstrap peers are redialled
	gossipDialTimeout             = 10 * time.Second // per bootstrap dial
	gossipMaxMessage              = 1 << 20          // GossipSub's default cap, stated
	maxBootstrapPeers             = 16               // --gossip-peer entries honoured
)

// GossipHost is a libp2p host with GossipSub. NewGossipHost validates;
// Start creates the host (binding its listen addresses) and GossipSub;
// Serve keeps the bootstrap peers connected; Close stops both.
type GossipHost struct {
	cfg    GossipConfig
	h      host.Host
	ps     *pubsub.PubSub
	peers  []peer.AddrInfo
	cancel context.CancelFunc
	log    *slog.Logger
}

// NewGossipHost checks cfg (bootstrap peers need /p2p/<id>); it starts
// nothing.
func NewGossipHost(cfg GossipConfig, log *slog.Logger) (*GossipHost, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Peers) > maxBootstrapPeers {
		return nil, fmt.Errorf("federation: at most %d gossip peers", maxBootstrapPeers)
	}
	peers := make([]peer.AddrInfo, 0, len(cfg.Peers))
	for _, s := range cfg.Peers {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("federation: gossip peer %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("federation: gossip peer %q needs /p2p/<id>: %w", s, err)
		}
		peers = append(peers, *ai)
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	return &GossipHost{cfg: cfg, peers: peers, log: log}, nil
}

// Start loads (or creates) the identity, starts the host on its listen
// addresses and GossipSub. Flood publishing: the seed is the topic's only
// publisher, and a replica that joined after the last heartbeat would
// otherwise wait for the mesh to include it. A second Start does nothing.
func (g *GossipHost) Start() error {
	if g.h != nil {
		return nil
	}
	key, err := gossipKey(g.cfg.KeyFile)
	if err != nil {
		return err
	}
	cm, err := connmgr.NewConnManager(gossipConnLow, gossipConnHigh)
	if err != nil {
		return fmt.Errorf("federation: gossip connection manager: %w", err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(g.cfg.Listen...), libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(quic.NewTransport), libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(), libp2p.DisableMetrics(), libp2p.UserAgent("meshnode-federation"))
	if err != nil {
		return fmt.Errorf("federation: gossip host: %w", err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(pctx, h, pubsub.WithFloodPublish(true), pubsub.WithMaxMessageSize(gossipMaxMessage))
	if err != nil {
		cancel()
		_ = h.Close()
		return fmt.Errorf("federation: gossipsub: %w", err)
	}
	g.h, g.ps, g.cancel, g.log = h, ps, cancel, g.log.With("peer_id", h.ID().ShortString())
	return nil
}

// gossipKey loads or creates the identity in path (empty: ephemeral).
func gossipKey(path string) (crypto.PrivKey, error) {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			k, err := crypto.UnmarshalPrivateKey(b)
			if err != nil {
				return nil, fmt.Errorf("federation: gossip key %s: %w", path, err)
			}
			return k, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("federation: gossip key: %w", err)
		}
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("federation: generating gossip key: %w", err)
	}
	if path == "" {
		return k, nil
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("federation: storing gossip key: %w", err)
	}
	return k, nil
}

// PubSub is the host's GossipSub router (nil before Start).
func (g *GossipHost) PubSub() *pubsub.PubSub { return g.ps }

// Host is the libp2p host (nil before Start).
func (g *GossipHost) Host() host.Host { return g.h }

// Addrs are the host's listen addresses with /p2p/<id> (none before Start).
func (g *GossipHost) Addrs() []string {
	if g.h == nil {
		return nil
	}
	out := make([]string, 0, len(g.h.Addrs()))
	for _, a := range g.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+g.h.ID().String())
	}
	return out
}

// Serve keeps the bootstrap peers connected until ctx ends (after Start).
func (g *GossipHost) Serve(ctx context.Context) {
	if g.h == nil {
		return
	}
	t := time.NewTicker(gossipRedial)
	defer t.Stop()
	for {
		for _, ai := range g.peers {
			if g.h.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, gossipDialTimeout)
			if err := g.h.Connect(dctx, ai); err != nil && ctx.Err() == nil {
				g.log.Warn("connecting to gossip peer", "peer", ai.ID.ShortString(), "error", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops GossipSub and the host (nothing before Start).
func (g *GossipHost) Close() error {
	if g.h == nil {
		return nil
	}
	g.cancel()
	return g.h.Close()
}
