package mesh

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

const (
	// rttConcurrency bounds concurrent RTT probes.
	rttConcurrency = 4
	// rttPerRound bounds the peers probed in one periodic round; the rest
	// wait for the next round.
	rttPerRound = 32
)

// maintainLoop expires silent peers and re-measures RTTs.
func (m *Mesh) maintainLoop(ctx context.Context) {
	expire := time.NewTicker(max(m.cfg.PeerTTL/4, 10*time.Millisecond))
	defer expire.Stop()
	rtt := time.NewTicker(m.cfg.RTTInterval)
	defer rtt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			for _, p := range m.table.expire(m.now(), m.cfg.PeerTTL) {
				m.log.Debug("peer expired", "peer", logPeer(p))
				m.stats.count("peer_expired")
			}
		case <-rtt.C:
			m.rttRound(ctx)
		}
	}
}

// rttRound probes up to rttPerRound peers, unmeasured ones first.
func (m *Mesh) rttRound(ctx context.Context) {
	peers := m.table.Snapshot()
	n := 0
	for pass := 0; pass < 2 && n < rttPerRound; pass++ {
		for _, p := range peers {
			if n == rttPerRound {
				break
			}
			if (pass == 0) == (p.RTT == 0) {
				if !m.probeRTT(ctx, p.PeerID, true) {
					return
				}
				n++
			}
		}
	}
}

// probeRTT measures p's RTT in the background. With wait it blocks for a
// probe slot; without, it skips when all slots are busy (the next round
// will measure). It reports false when the mesh is shutting down.
func (m *Mesh) probeRTT(ctx context.Context, p peer.ID, wait bool) bool {
	if wait {
		select {
		case m.rttSem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	} else {
		select {
		case m.rttSem <- struct{}{}:
		default:
			return true
		}
	}
	if !m.track() {
		<-m.rttSem
		return false
	}
	go func() {
		defer m.wg.Done()
		defer func() { <-m.rttSem }()
		if d, ok := m.measureRTT(ctx, p); ok {
			m.table.setRTT(p, d)
		}
	}()
	return true
}

// measureRTT runs one libp2p ping to p, bounded by RTTTimeout. It never
// dials: a node hearing of hundreds of peers through gossip must not open
// a connection to each just to time it (home routers keep small NAT
// tables), so only peers already connected (by the DHT, gossip or a call)
// are measured. A peer not connected, or without the ping service, keeps
// the neutral latency score until a later round finds it connected.
func (m *Mesh) measureRTT(ctx context.Context, p peer.ID) (time.Duration, bool) {
	if m.h.Network().Connectedness(p) != network.Connected {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RTTTimeout)
	defer cancel()
	ctx = network.WithNoDial(ctx, "rtt probe")
	res, ok := <-ping.Ping(ctx, m.h, p)
	if !ok || res.Error != nil {
		return 0, false
	}
	return res.RTT, true
}
