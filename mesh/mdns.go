package mesh

import (
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// LAN discovery by mDNS (docs/spec-decisions.md, "Home mesh"). With
// Config.MDNS the node announces itself on the local network under
// MDNSService and dials the meshnode peers it hears of, as bootstrap peers:
// two nodes on one LAN meet with no directory and no configured address.
// Finding a peer grants it nothing: its adverts are verified as any
// advert, and it is served only by what it proves (a membership
// credential, the same operator, the allowlist or open mode).

// DefaultMDNSService is the mDNS service name meshnode nodes announce and
// browse: their own, so a node does not dial every libp2p host on the LAN.
const DefaultMDNSService = "_meshnode._udp"

// mdnsNotifee receives mDNS results. The mdns package calls it on a
// goroutine of its own per result, so it never blocks.
type mdnsNotifee struct{ m *Mesh }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	m := n.m
	if m.ctx.Err() != nil || ai.ID == m.h.ID() {
		return
	}
	// A meshnode node's peer ID embeds its Ed25519 key (its node_id).
	if _, err := NodeIDOf(ai.ID); err != nil {
		m.stats.count("mdns_ignored")
		return
	}
	m.stats.count("mdns_found")
	m.AddBootstrapPeers([]peer.AddrInfo{ai})
}

// startMDNS announces the node and browses for peers; the returned stop
// ends both (nil when mDNS is off or could not start: the node then runs
// without LAN discovery and says so).
func (m *Mesh) startMDNS() (stop func()) {
	if !m.cfg.MDNS {
		return nil
	}
	svc := mdns.NewMdnsService(m.h, m.cfg.MDNSService, mdnsNotifee{m: m})
	if err := svc.Start(); err != nil {
		m.log.Warn("mDNS discovery not started; LAN peers are found only through directories or mesh.bootstrap", "error", err)
		return nil
	}
	m.log.Info("mDNS discovery on", "service", m.cfg.MDNSService)
	return func() { _ = svc.Close() }
}
