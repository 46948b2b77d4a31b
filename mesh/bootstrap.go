package mesh

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

const (
	// bootstrapDialers bounds concurrent bootstrap dials.
	bootstrapDialers = 8
	// bootstrapRecheck is how often an isolated node re-dials its bootstrap peers.
	bootstrapRecheck = 30 * time.Second
	// bootstrapProtectTag keeps the connection manager from trimming the
	// first links into the mesh.
	bootstrapProtectTag = "meshnode-bootstrap"
	// bootstrapProtectMax bounds protected connections so the connection
	// manager can still trim to its low watermark.
	bootstrapProtectMax = 8
)

// AddBootstrapPeers adds bootstrap peers, typically the meshnode.p2p
// extensions of directory discover/bootstrap results (ParseP2PExtension).
// They are dialled at once if Serve is running, else when it starts.
func (m *Mesh) AddBootstrapPeers(infos []peer.AddrInfo) {
	if m.addBootstrap(infos) > 0 {
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

// bootstrapLoop dials bootstrap peers at start, whenever new ones are
// added, and again whenever the node finds itself without connections.
func (m *Mesh) bootstrapLoop(ctx context.Context) {
	t := time.NewTicker(bootstrapRecheck)
	defer t.Stop()
	m.connectBootstrap(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kickBoot:
			m.connectBootstrap(ctx)
		case <-t.C:
			if len(m.h.Network().Peers()) == 0 {
				m.connectBootstrap(ctx)
			}
		}
	}
}

// connectBootstrap dials every unconnected bootstrap peer and, once any
// connection exists, refreshes the DHT routing table.
func (m *Mesh) connectBootstrap(ctx context.Context) {
	peers := m.bootstrapPeers()
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
