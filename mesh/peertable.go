package mesh

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxTablePeers bounds the peer table; past it, new peers are not added
// until silent ones expire.
const maxTablePeers = 4096

// PeerInfo is what this node knows about one other mesh node.
type PeerInfo struct {
	PeerID peer.ID
	// NodeID is the node_id derived from PeerID's key (NodeIDOf): adverts
	// claiming another are rejected, and DHT-only entries get it computed.
	NodeID        string
	Region        string
	Caps          []AdvertCap
	Load          float64
	ActiveJobs    int
	MaxConcurrent int
	Available     bool
	Addrs         []string
	// Seq is the sequence number of the advert the entry holds (0: none yet).
	Seq uint64
	// AdvertAt is the advert's own timestamp (sender clock).
	AdvertAt time.Time
	// LastSeen is when this node last received an advert (or, for DHT-only
	// entries, a provider record) for the peer, on the local clock.
	LastSeen time.Time
	// RTT is the last measured round-trip time; 0 means not measured yet.
	RTT time.Duration
	// FromDHT marks a peer known only from a DHT provider record: no advert,
	// so its load and capacity are unknown.
	FromDHT bool
	// Breaker is the circuit state for the peer ("closed", "open", "half-open").
	Breaker string
	// Operator is the operator key (standard base64) of the delegation the
	// peer's advert carried and this node verified ("" when none did).
	Operator string
}

// Serves reports whether the peer advertises intent (and model, if set;
// a peer listing no models for the intent is assumed to accept any).
func (p *PeerInfo) Serves(intent, model string) bool {
	for _, c := range p.Caps {
		if c.Intent != intent {
			continue
		}
		if model == "" || len(c.Models) == 0 || slices.Contains(c.Models, model) {
			return true
		}
	}
	return false
}

// PeerTable is the node's view of the mesh: who serves what, how loaded,
// how close, last seen. Entries merge by (peer, seq): a newer advert
// supersedes an older one and replays change nothing, so the table
// converges whatever order gossip delivers adverts in.
type PeerTable struct {
	self peer.ID

	mu    sync.RWMutex
	peers map[peer.ID]*PeerInfo
}

func newPeerTable(self peer.ID) *PeerTable {
	return &PeerTable{self: self, peers: make(map[peer.ID]*PeerInfo)}
}

// upsertAdvert merges a validated advert received at now. It reports
// whether the peer was not in the table before.
func (t *PeerTable) upsertAdvert(a *Advert, now time.Time) (added bool) {
	id, err := peer.Decode(a.PeerID)
	if err != nil || id == t.self {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if ok && a.Seq <= e.Seq {
		return false
	}
	if !ok {
		if len(t.peers) >= maxTablePeers {
			return false
		}
		e = &PeerInfo{PeerID: id}
		t.peers[id] = e
	}
	e.NodeID = a.NodeID
	e.Region = a.Region
	e.Caps = slices.Clone(a.Caps)
	e.Load = a.Load
	e.ActiveJobs = a.ActiveJobs
	e.MaxConcurrent = a.MaxConcurrent
	e.Available = a.Available
	e.Addrs = slices.Clone(a.Addrs)
	e.Seq = a.Seq
	e.AdvertAt = time.UnixMilli(a.TimestampMs)
	e.LastSeen = now
	e.FromDHT = false
	e.Operator = a.operatorKey
	return !ok
}

// addProvider records that the DHT lists p as a provider of intent. It
// never overrides an advert: an advert is signed by p itself and fresher.
// The entry's node_id is the one p's key proves; a peer whose ID embeds no
// Ed25519 key has no node_id and is not recorded.
func (t *PeerTable) addProvider(p peer.ID, intent string, now time.Time) {
	if p == t.self {
		return
	}
	nodeID, err := NodeIDOf(p)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[p]
	if ok && !e.FromDHT {
		return
	}
	if !ok {
		if len(t.peers) >= maxTablePeers {
			return
		}
		e = &PeerInfo{PeerID: p, NodeID: nodeID, FromDHT: true, Available: true}
		t.peers[p] = e
	}
	if !e.Serves(intent, "") {
		e.Caps = append(e.Caps, AdvertCap{Intent: intent})
	}
	e.LastSeen = now
}

// advertSeq is the sequence number of the advert held for p.
func (t *PeerTable) advertSeq(p peer.ID) (uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.peers[p]
	if !ok || e.Seq == 0 {
		return 0, false
	}
	return e.Seq, true
}

func (t *PeerTable) setRTT(p peer.ID, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.peers[p]; ok {
		e.RTT = d
	}
}

func (t *PeerTable) get(p peer.ID) (PeerInfo, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.peers[p]
	if !ok {
		return PeerInfo{}, false
	}
	return e.clone(), true
}

// expire drops peers not heard from within ttl and returns them.
func (t *PeerTable) expire(now time.Time, ttl time.Duration) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []peer.ID
	for id, e := range t.peers {
		if now.Sub(e.LastSeen) > ttl {
			delete(t.peers, id)
			gone = append(gone, id)
		}
	}
	return gone
}

// serving returns the peers serving intent (and model), in no order.
func (t *PeerTable) serving(intent, model string) []PeerInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []PeerInfo
	for _, e := range t.peers {
		if e.Serves(intent, model) {
			out = append(out, e.clone())
		}
	}
	return out
}

// Snapshot returns every known peer ordered by peer ID.
func (t *PeerTable) Snapshot() []PeerInfo {
	t.mu.RLock()
	out := make([]PeerInfo, 0, len(t.peers))
	for _, e := range t.peers {
		out = append(out, e.clone())
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(string(a.PeerID), string(b.PeerID)) })
	return out
}

// Len is the number of known peers.
func (t *PeerTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.peers)
}

func (e *PeerInfo) clone() PeerInfo {
	c := *e
	c.Caps = slices.Clone(e.Caps)
	c.Addrs = slices.Clone(e.Addrs)
	return c
}
