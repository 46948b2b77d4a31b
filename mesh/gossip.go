package mesh

import (
	"context"
	"fmt"
	"math"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// newGossip starts GossipSub with strict signing and our size cap, and
// joins the advert topic behind the validator.
func newGossip(ctx context.Context, h host.Host, v *advertValidator) (*pubsub.PubSub, *pubsub.Topic, error) {
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxPubsubMessage),
		// Peer exchange hands out peers to strangers on PRUNE; the mesh
		// learns peers from the directory and the DHT instead.
		pubsub.WithPeerExchange(false),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("starting gossipsub: %w", err)
	}
	// Inline: decoding one bounded advert is cheaper than a goroutine hop.
	if err := ps.RegisterTopicValidator(AdvertTopic, v.validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, nil, fmt.Errorf("registering advert validator: %w", err)
	}
	t, err := ps.Join(AdvertTopic)
	if err != nil {
		return nil, nil, fmt.Errorf("joining %s: %w", AdvertTopic, err)
	}
	return ps, t, nil
}

// localLoad samples this node's load and active jobs.
func (m *Mesh) localLoad() (float64, int) {
	if m.cfg.Load != nil {
		l, n := m.cfg.Load()
		if math.IsNaN(l) {
			l = 1
		}
		return clamp01(l), max(0, n)
	}
	n := int(m.active.Load())
	if m.cfg.MaxConcurrent <= 0 {
		return 0, n
	}
	return clamp01(float64(n) / float64(m.cfg.MaxConcurrent)), n
}

// buildAdvert makes this node's next advert.
func (m *Mesh) buildAdvert(load float64, jobs int) *Advert {
	a := &Advert{
		Version:       advertVersion,
		NodeID:        m.cfg.NodeID,
		PeerID:        m.h.ID().String(),
		Load:          load,
		ActiveJobs:    jobs,
		MaxConcurrent: m.cfg.MaxConcurrent,
		Seq:           m.seq.Add(1),
		TimestampMs:   m.now().UnixMilli(),
		Region:        m.cfg.Region,
		// iicp-semantics.md §5: unavailable when active_jobs >= max_concurrent.
		Available: m.cfg.MaxConcurrent <= 0 || jobs < m.cfg.MaxConcurrent,
	}
	for _, c := range m.cfg.Capabilities {
		a.Caps = append(a.Caps, AdvertCap{Intent: c.Intent, Models: c.Models})
	}
	for _, addr := range m.h.Addrs() {
		if len(a.Addrs) == maxAdvertAddrs {
			break
		}
		if publishable(addr, m.loopback) {
			a.Addrs = append(a.Addrs, addr.String())
		}
	}
	return a
}

// publishAdvert encodes and publishes one advert.
func (m *Mesh) publishAdvert(ctx context.Context, load float64, jobs int) error {
	b, err := encodeAdvert(m.buildAdvert(load, jobs))
	if err != nil {
		return err
	}
	if len(b) > m.cfg.AdvertMaxBytes {
		return fmt.Errorf("advert of %d bytes exceeds cap %d: too many capabilities or addresses", len(b), m.cfg.AdvertMaxBytes)
	}
	if err := m.topic.Publish(ctx, b); err != nil {
		return fmt.Errorf("publishing advert: %w", err)
	}
	m.stats.count("advert_published")
	return nil
}

// advertLoop publishes this node's advert every AdvertInterval, at once
// when load moves by LoadChangeThreshold, and when peers join the topic
// (so newcomers learn us without waiting a full interval). Adverts are
// never closer together than MinAdvertGap.
func (m *Mesh) advertLoop(ctx context.Context) {
	if len(m.cfg.Capabilities) == 0 {
		return // a pure consumer has nothing to advertise
	}
	poll := time.NewTicker(m.cfg.LoadPollInterval)
	defer poll.Stop()
	var last time.Time
	lastLoad := -1.0
	joinGap := max(m.cfg.MinAdvertGap, m.cfg.AdvertInterval/4)
	for {
		load, jobs := m.localLoad()
		now := m.now()
		due := now.Sub(last) >= m.cfg.AdvertInterval ||
			(math.Abs(load-lastLoad) >= m.cfg.LoadChangeThreshold && now.Sub(last) >= m.cfg.MinAdvertGap) ||
			(now.Sub(last) >= joinGap && m.joined.Swap(false))
		if due {
			if err := m.publishAdvert(ctx, load, jobs); err != nil && ctx.Err() == nil {
				m.log.Warn("advert not published", "error", err)
			}
			last, lastLoad = now, load
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-m.kickAdvert:
		}
	}
}

// watchJoins flags a re-advert when a peer joins the advert topic.
func (m *Mesh) watchJoins(ctx context.Context) {
	eh, err := m.topic.EventHandler()
	if err != nil {
		m.log.Warn("no topic event handler", "error", err)
		return
	}
	defer eh.Cancel()
	for {
		ev, err := eh.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			m.joined.Store(true)
			select {
			case m.kickAdvert <- struct{}{}:
			default:
			}
		}
	}
}

// readAdverts applies validated adverts to the peer table.
func (m *Mesh) readAdverts(ctx context.Context) {
	for {
		msg, err := m.sub.Next(ctx)
		if err != nil {
			return
		}
		a, ok := msg.ValidatorData.(*Advert)
		if !ok || msg.Local {
			continue
		}
		id := msg.GetFrom()
		m.addAdvertAddrs(id, a.Addrs)
		if m.table.upsertAdvert(a, m.now()) {
			m.log.Debug("peer joined", "peer", logPeer(id), "node_id", a.NodeID)
			m.probeRTT(ctx, id, false)
		}
		m.stats.count("advert_accepted")
	}
}

// addAdvertAddrs puts the advertised addresses into the peerstore so the
// peer can be dialled for tasks even without a prior connection.
func (m *Mesh) addAdvertAddrs(id peer.ID, addrs []string) {
	var out []ma.Multiaddr
	for _, s := range addrs {
		if a, ok := parseDialAddr(s, id, m.loopback); ok {
			out = append(out, a)
		}
	}
	if len(out) > 0 {
		m.h.Peerstore().AddAddrs(id, out, m.cfg.PeerTTL)
	}
}
