package mesh

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// LAN discovery by mDNS (docs/spec-decisions.md, "Home mesh"). With
// Config.MDNS the node announces itself on the local network under
// MDNSService and dials the meshnode peers it hears of: two nodes on one
// LAN meet with no directory and no configured address. Finding a peer
// grants it nothing: its adverts are verified as any advert, and it is
// served only by what it proves (a membership credential, the same
// operator, the allowlist or open mode). Any LAN host can announce
// anything, so found peers go through a small bounded queue and dialler
// pool of their own: a flood of bogus announcements can delay discovery
// but neither fills the bootstrap set nor grows without bound.

// DefaultMDNSService is the mDNS service name meshnode nodes announce and
// browse: their own, so a node does not dial every libp2p host on the LAN.
const DefaultMDNSService = "_meshnode._udp"

const (
	// mdnsQueue bounds found peers waiting for a dial; more are dropped
	// (counted mdns_dropped) until the dialers catch up.
	mdnsQueue = 32
	// mdnsDialers bounds concurrent dials to found peers.
	mdnsDialers = 4
)

// mdnsNotifee receives mDNS results. The mdns package calls it on a
// goroutine of its own per result, so it never blocks.
type mdnsNotifee struct {
	m     *Mesh
	found chan peer.AddrInfo
}

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	m := n.m
	if ai.ID == m.h.ID() {
		return
	}
	// A meshnode node's peer ID embeds its Ed25519 key (its node_id).
	if _, err := NodeIDOf(ai.ID); err != nil {
		m.stats.count("mdns_ignored")
		return
	}
	select {
	case n.found <- ai:
		m.stats.count("mdns_found")
	default:
		m.stats.count("mdns_dropped")
	}
}

// mdnsLoop announces the node and browses for peers until ctx ends,
// dialling each found peer that is not connected yet. When mDNS cannot
// start the node runs without LAN discovery and says so.
func (m *Mesh) mdnsLoop(ctx context.Context) {
	n := mdnsNotifee{m: m, found: make(chan peer.AddrInfo, mdnsQueue)}
	svc := mdns.NewMdnsService(m.h, m.cfg.MDNSService, n)
	if err := svc.Start(); err != nil {
		m.log.Warn("mDNS discovery not started; LAN peers are found only through directories or mesh.bootstrap", "error", err)
		return
	}
	defer func() { _ = svc.Close() }()
	m.log.Info("mDNS discovery on", "service", m.cfg.MDNSService)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range mdnsDialers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ai := <-n.found:
					m.dialFound(ctx, ai)
				}
			}
		})
	}
	<-ctx.Done()
}

// dialFound connects to a peer found on the LAN, through the addresses
// this host can dial (loopback ones only on a loopback-only host).
func (m *Mesh) dialFound(ctx context.Context, ai peer.AddrInfo) {
	if m.h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	infos := dialable([]peer.AddrInfo{ai}, m.loopback)
	if len(infos) == 0 {
		m.stats.count("mdns_ignored")
		return
	}
	m.h.Peerstore().AddAddrs(ai.ID, infos[0].Addrs, peerstore.TempAddrTTL)
	dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	if err := m.h.Connect(dctx, infos[0]); err != nil {
		m.stats.count("mdns_dial_failed")
		m.log.Debug("mDNS peer dial failed", "peer", logPeer(ai.ID), "error", err)
		return
	}
	m.stats.count("mdns_connected")
}
