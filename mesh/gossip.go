package mesh

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/wire"
)

// gossipQueueSize is the length of pubsub's validation queue and of each
// peer's outbound queue: room for one advert from each of a few hundred
// nodes at once, at a few hundred bytes each.
const gossipQueueSize = 256

// newGossip starts GossipSub with strict signing and our size cap, and
// joins the advert topic behind the validator.
func newGossip(ctx context.Context, h host.Host, v *advertValidator) (*pubsub.PubSub, *pubsub.Topic, error) {
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxPubsubMessage),
		// Peer exchange hands out peers to strangers on PRUNE; the mesh
		// learns peers from the directory and the DHT instead.
		pubsub.WithPeerExchange(false),
		// A start-up storm (every node adverts as its peers join) overflows
		// the default queues of 32, and a message dropped there is only
		// recovered if gossip offers it again within three heartbeats.
		pubsub.WithValidateQueueSize(gossipQueueSize),
		pubsub.WithPeerOutboundQueueSize(gossipQueueSize),
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
		return wire.Clamp01(l), max(0, n)
	}
	n := int(m.active.Load())
	if m.cfg.MaxConcurrent <= 0 {
		return 0, n
	}
	return wire.Clamp01(float64(n) / float64(m.cfg.MaxConcurrent)), n
}

// backendAvailable is Config.Available, true when unset.
func (m *Mesh) backendAvailable() bool { return m.cfg.Available == nil || m.cfg.Available() }

// Readvertise publishes a fresh advert soon (subject to MinAdvertGap):
// call it when availability changed, so peers stop (or resume) routing
// here without waiting for the next periodic advert.
func (m *Mesh) Readvertise() {
	select {
	case m.kickAdvert <- struct{}{}:
	default:
	}
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
		// iicp-semantics.md §5: unavailable when active_jobs >= max_concurrent,
		// and while the backend does not answer.
		Available: (m.cfg.MaxConcurrent <= 0 || jobs < m.cfg.MaxConcurrent) && m.backendAvailable(),
	}
	a.Caps = advertCaps(m.cfg.Capabilities)
	a.Operator = m.ownOperator()
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

// joinAdvertBurst is how many adverts peers joining the topic may trigger
// back to back (a start-up storm, or a node reconnecting to several peers
// at once); past it, one more per AdvertInterval/4. It trades a short burst
// of gossip for newcomers learning this node in about MinAdvertGap, while
// a steady stream of joins costs no more than before.
const joinAdvertBurst = 3

// joinSettle is how long a join must be old before an advert answers it:
// pubsub reports the join when the peer's subscription arrives, which can
// be before its own send queue to the peer exists, and a message published
// in that window never reaches the newcomer.
const joinSettle = 250 * time.Millisecond

// joinState records joins not yet answered by an advert.
type joinState struct {
	mu     sync.Mutex
	oldest time.Time // earliest unanswered join; zero when none
	newest time.Time
}

func (j *joinState) add(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.oldest.IsZero() {
		j.oldest = now
	}
	j.newest = now
}

// pending returns the earliest unanswered join (zero: none).
func (j *joinState) pending() time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.oldest
}

// answered records an advert published at now: joins older than
// joinSettle have it; a younger one still waits for the next advert.
func (j *joinState) answered(now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.newest.IsZero() && now.Sub(j.newest) < joinSettle {
		j.oldest = j.newest
		return
	}
	j.oldest = time.Time{}
}

// warmupAdverts is how many periodic adverts come early after start: the
// first interval is AdvertInterval/2^warmupAdverts and doubles with each
// (2.5, 5, 10, 20 s by default). A node that has just started sits in a
// gossip mesh that is still forming, where an advert is easily missed by
// part of the network; a few early repeats bound that tail at the cost of
// three adverts per start.
const warmupAdverts = 3

// advertLoop publishes this node's advert every AdvertInterval (sooner
// right after start, see warmupAdverts), at once when load moves by
// LoadChangeThreshold, and when peers join the topic (so newcomers learn
// us without waiting a full interval). Adverts are never closer together
// than MinAdvertGap.
func (m *Mesh) advertLoop(ctx context.Context) {
	if len(m.cfg.Capabilities) == 0 {
		return // a pure consumer has nothing to advertise
	}
	poll := time.NewTicker(m.cfg.LoadPollInterval)
	defer poll.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	var last time.Time
	lastLoad := -1.0
	lastAvail := true
	interval := max(m.cfg.AdvertInterval>>warmupAdverts, m.cfg.MinAdvertGap)
	tokens := bucket{tokens: joinAdvertBurst, last: m.now()}
	joinRate := 4 / m.cfg.AdvertInterval.Seconds() // tokens per second
	for {
		load, jobs := m.localLoad()
		now := m.now()
		gapOK := now.Sub(last) >= m.cfg.MinAdvertGap
		join := m.joins.pending()
		joinReady := !join.IsZero() && now.Sub(join) >= joinSettle
		periodic := now.Sub(last) >= interval
		avail := m.backendAvailable()
		due := periodic || avail != lastAvail ||
			(gapOK && math.Abs(load-lastLoad) >= m.cfg.LoadChangeThreshold) ||
			(gapOK && joinReady && tokens.take(now, joinRate, joinAdvertBurst))
		if due {
			// The start-up advert reaches nobody yet; warm-up counts from it.
			if periodic && !last.IsZero() {
				interval = min(2*interval, m.cfg.AdvertInterval)
			}
			if err := m.publishAdvert(ctx, load, jobs); err != nil && ctx.Err() == nil {
				m.log.Warn("advert not published", "error", err)
			}
			m.joins.answered(now)
			last, lastLoad, lastAvail = now, load, avail
		}
		// A pending join is answered when it has settled, the gap has
		// passed and a token is there, whichever comes last; not at the
		// next poll tick.
		wake.Reset(time.Hour)
		if join := m.joins.pending(); !join.IsZero() {
			at := later(join.Add(joinSettle), last.Add(m.cfg.MinAdvertGap))
			at = later(at, now.Add(tokens.readyIn(now, joinRate)))
			wake.Reset(max(at.Sub(now), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-wake.C:
		case <-m.kickAdvert:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
			m.joins.add(m.now())
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

// advertCaps is the advert form of caps.
func advertCaps(caps []wire.Capability) []AdvertCap {
	out := make([]AdvertCap, 0, len(caps))
	for _, c := range caps {
		out = append(out, AdvertCap{Intent: c.Intent, Models: c.Models})
	}
	return out
}
