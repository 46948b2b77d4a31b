package mesh

import (
	"context"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	// bootstrapDialers bounds concurrent bootstrap dials.
	bootstrapDialers = 8
	// bootstrapRecheck is the longest pause between bootstrap rounds of an
	// isolated node; bootstrapRetryMin the first.
	bootstrapRecheck  = 30 * time.Second
	bootstrapRetryMin = 500 * time.Millisecond
	// bootstrapProtectTag keeps the connection manager from trimming the
	// first links into the mesh.
	bootstrapProtectTag = "meshnode-bootstrap"
	// bootstrapProtectMax bounds protected connections so the connection
	// manager can still trim to its low watermark.
	bootstrapProtectMax = 8
)

// AddBootstrapPeers adds bootstrap peers, typically the meshnode.p2p
// extensions of directory discover/bootstrap results (ParseP2PExtension).
// Addresses this host cannot dial are dropped: link-local and unspecified
// ones always, loopback ones unless this host listens on loopback alone
// (Config.BootstrapPeers, the operator's own list, is taken as written).
// They are dialled at once if Serve is running, else when it starts.
func (m *Mesh) AddBootstrapPeers(infos []peer.AddrInfo) {
	if m.addBootstrap(dialable(infos, m.loopback)) > 0 {
		select {
		case m.kickBoot <- struct{}{}:
		default:
		}
	}
}

// addBootstrap records infos and returns how many were new or changed.
func (m *Mesh) addBootstrap(infos []peer.AddrInfo) int {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	n := 0
	for _, ai := range infos {
		if ai.ID == "" || ai.ID == m.h.ID() || len(ai.Addrs) == 0 {
			continue
		}
		if _, ok := m.boot[ai.ID]; !ok && len(m.boot) >= DefaultMaxBootstrapPeers {
			continue
		}
		m.boot[ai.ID] = ai
		delete(m.bootTried, ai.ID)
		m.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
		n++
	}
	return n
}

// bootstrapPeers is the DHT's bootstrap source.
func (m *Mesh) bootstrapPeers() []peer.AddrInfo {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	out := make([]peer.AddrInfo, 0, len(m.boot))
	for _, ai := range m.boot {
		out = append(out, ai)
	}
	return out
}

// bootstrapLoop dials bootstrap peers at start and whenever new ones are
// added. While the node has no connection at all it retries with backoff
// from bootstrapRetryMin up to bootstrapRecheck (a busy bootstrap peer may
// refuse a burst of newcomers).
func (m *Mesh) bootstrapLoop(ctx context.Context) {
	wait := bootstrapRetryMin
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kickBoot:
		case <-t.C:
		}
		if len(m.h.Network().Peers()) == 0 || m.hasUnconnectedBootstrap() {
			m.connectBootstrap(ctx)
		}
		if len(m.h.Network().Peers()) == 0 {
			// Jittered so newcomers refused together do not retry together.
			wait = min(2*wait, bootstrapRecheck)
			wait = time.Duration(float64(wait) * (0.5 + mrand.Float64()))
		} else {
			wait = bootstrapRecheck
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// hasUnconnectedBootstrap reports whether a bootstrap peer added since the
// last round has never been connected.
func (m *Mesh) hasUnconnectedBootstrap() bool {
	m.bootMu.Lock()
	defer m.bootMu.Unlock()
	for id := range m.boot {
		if !m.bootTried[id] {
			return true
		}
	}
	return false
}

// connectBootstrap dials every unconnected bootstrap peer and, once any
// connection exists, refreshes the DHT routing table.
func (m *Mesh) connectBootstrap(ctx context.Context) {
	peers := m.bootstrapPeers()
	m.bootMu.Lock()
	for _, ai := range peers {
		m.bootTried[ai.ID] = true
	}
	m.bootMu.Unlock()
	sem := make(chan struct{}, bootstrapDialers)
	var wg sync.WaitGroup
	for _, ai := range peers {
		if m.h.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, DefaultBootstrapDialTimeout)
			defer cancel()
			// Our own backoff paces these rounds; the swarm's per-address dial
			// backoff would otherwise refuse the retry outright.
			dctx = network.WithForceDirectDial(dctx, "meshnode bootstrap")
			if err := m.h.Connect(dctx, ai); err != nil {
				m.log.Debug("bootstrap dial failed", "peer", logPeer(ai.ID), "error", err)
				return
			}
			if m.protected.Add(1) <= bootstrapProtectMax {
				m.h.ConnManager().Protect(ai.ID, bootstrapProtectTag)
			}
		})
	}
	wg.Wait()
	if ctx.Err() == nil && len(m.h.Network().Peers()) > 0 {
		if err := m.dht.Bootstrap(ctx); err != nil {
			m.log.Debug("dht bootstrap", "error", err)
		}
	}
}
