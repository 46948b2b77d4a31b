package mesh

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// Peer selection. The directory's score (iicp-semantics.md §3.1) is the
// directory's own value; a client must not present a local value as that
// score. The mesh therefore computes a distinct local *selection value*
// (docs/spec-decisions.md, ## mesh): the §3.1 formula evaluated on the
// peer's signed advert, blended with the RTT this node measured:
//
//	selection = 0.8 × base + 0.2 × latency_score
//	latency_score = 1 / (1 + rtt / 50 ms)   (0.5 while unmeasured)
//
// base is wire.Score, the one §3.1 formula, with the Phase 3 weights, or
// the Phase 5 weights when the CALL pins a model. Hard gates (intent, pinned model, availability, open circuit)
// are applied before any ranking (§3.1 "Hard rule").
const (
	selBaseWeight    = 0.8
	selLatencyWeight = 0.2
	// selRTTScale is the RTT at which latency_score halves; loopback and
	// LAN peers sit near 1, intercontinental peers near 0.2.
	selRTTScale = 50 * time.Millisecond
	// selUnknown is used for any factor a DHT-only peer cannot tell us.
	selUnknown = 0.5
)

// selectRequest is what ranking needs to know about the CALL.
type selectRequest struct {
	intent string
	model  string
	region string
}

// eligible applies the hard gates to one peer.
func eligible(p *PeerInfo, req selectRequest) bool {
	if !p.Serves(req.intent, req.model) {
		return false
	}
	return p.FromDHT || p.Available
}

// selectionValue is the local selection value of p for req; failures is
// the peer's current count of consecutive failures seen by this node and
// threshold the breaker threshold.
func selectionValue(p *PeerInfo, req selectRequest, failures, threshold int) float64 {
	return ratedValue(p, req, failures, threshold, 1)
}

// ratedValue is selectionValue with the success rate this node observed
// for the peer (1 when unobserved): local reputation is that rate, eaten
// further by consecutive failures until the breaker opens.
func ratedValue(p *PeerInfo, req selectRequest, failures, threshold int, rate float64) float64 {
	avail, load, capRatio := 1.0, p.Load, selUnknown
	if p.FromDHT {
		avail, load = selUnknown, selUnknown
	}
	if p.MaxConcurrent > 0 {
		capRatio = wire.Clamp01(float64(p.MaxConcurrent-p.ActiveJobs) / float64(p.MaxConcurrent))
	}
	in := wire.ScoreInput{Availability: avail, Load: load, Capacity: capRatio,
		Region: wire.RegionMatch(req.region, p.Region),
		// Local reputation: consecutive failures eat into it until the breaker opens.
		Reputation: wire.Clamp01(rate * (1 - float64(failures)/float64(threshold)))}
	if req.model != "" {
		in.Model, in.ModelMatch = true, selUnknown
		if p.listsModel(req.intent, req.model) {
			in.ModelMatch = 1
		}
		// price_score: adverts carry no pricing, so every peer ties at 1.
		in.Price = 1
	}
	base := wire.Score(in)
	lat := selUnknown
	if p.RTT > 0 {
		lat = 1 / (1 + float64(p.RTT)/float64(selRTTScale))
	}
	return selBaseWeight*base + selLatencyWeight*lat
}

func (p *PeerInfo) listsModel(intent, model string) bool {
	for _, c := range p.Caps {
		if c.Intent == intent && slices.Contains(c.Models, model) {
			return true
		}
	}
	return false
}

// peerStat is what this node observed of a peer: consecutive failures
// (the breaker's count) and the success rate of its answers.
type peerStat struct {
	failures int
	rate     float64
}

// rank orders peers by descending selection value, every peer that offers
// only the echo backend for the intent after every peer with a real model
// (a node never sends a task to echo when a real model serves it). Peers
// with equal value are shuffled so equally good peers share the load.
func rank(peers []PeerInfo, req selectRequest, stat func(PeerInfo) peerStat, threshold int) []PeerInfo {
	type scored struct {
		p    PeerInfo
		v    float64
		echo bool
	}
	s := make([]scored, 0, len(peers))
	for _, p := range peers {
		st := stat(p)
		s = append(s, scored{p: p, v: ratedValue(&p, req, st.failures, threshold, st.rate), echo: p.EchoOnly(req.intent)})
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	slices.SortStableFunc(s, func(a, b scored) int {
		switch {
		case a.echo != b.echo && a.echo:
			return 1
		case a.echo != b.echo:
			return -1
		case a.v > b.v:
			return -1
		case a.v < b.v:
			return 1
		}
		return 0
	})
	out := make([]PeerInfo, len(s))
	for i := range s {
		out[i] = s[i].p
	}
	return out
}

// EchoOnly reports whether the peer offers intent only through meshnode's
// echo backend (wire.EchoModel): no model answers there.
func (p *PeerInfo) EchoOnly(intent string) bool {
	for _, c := range p.Caps {
		if c.Intent == intent && !wire.EchoOnly(c.Models) {
			return false
		}
	}
	return p.Serves(intent, "")
}

// stat is peerStat of p now.
func (m *Mesh) stat(p PeerInfo) peerStat {
	return peerStat{failures: m.breakers.Consecutive(p.PeerID), rate: m.rates.rate(p.PeerID)}
}

// successRates is the exponentially weighted success rate of each peer's
// attempts, as this node saw them (answers that were the peer's fault
// count as failures; load signals and the caller's own errors do not count).
type successRates struct {
	mu sync.Mutex
	m  map[peer.ID]float64
}

const (
	// rateAlpha weighs the newest outcome: about the last ten count.
	rateAlpha = 0.2
	maxRates  = 4096
)

func (r *successRates) record(p peer.ID, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= maxRates {
		r.m = make(map[peer.ID]float64)
	}
	old, seen := r.m[p]
	if !seen {
		old = 1
	}
	r.m[p] = (1-rateAlpha)*old + rateAlpha*v
}

// rate is p's success rate; 1 (optimistic) when never observed.
func (r *successRates) rate(p peer.ID) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[p]; ok {
		return v
	}
	return 1
}

// Candidates returns the peers eligible for call (hard gates applied, open
// circuits left out), best first by the local selection value: the mesh
// finder of route. It never waits on the DHT: when the table knows fewer
// peers than a call may try, a provider lookup runs in the background and
// what it finds joins the table for later calls (a DHT-only peer has no
// advert yet, so no node_id a consumer token could name). nil when the
// mesh is closed or no peer qualifies.
func (m *Mesh) Candidates(call *wire.Call) []PeerInfo {
	if m.ctx.Err() != nil || !m.started.Load() {
		return nil
	}
	req := selectRequest{intent: call.Intent, model: call.Model, region: call.Constraints.Region}
	list := m.eligiblePeers(req)
	if len(list) < m.cfg.RetryAttempts {
		m.findProvidersAsync(call.Intent)
	}
	return rank(list, req, m.stat, m.cfg.BreakerThreshold)
}

// Value is p's local selection value for call (the value Candidates ranks
// by), for routers that merge the mesh's candidates with others.
func (m *Mesh) Value(p PeerInfo, call *wire.Call) float64 {
	req := selectRequest{intent: call.Intent, model: call.Model, region: call.Constraints.Region}
	st := m.stat(p)
	return ratedValue(&p, req, st.failures, m.cfg.BreakerThreshold, st.rate)
}

// SelfValue is the same value for this node serving call itself, with its
// engine's current load: no network, so the best latency score. ok is
// false when this node does not serve the intent (and model), or serves it
// only through the echo backend.
func (m *Mesh) SelfValue(call *wire.Call, load float64, active, maxConcurrent int) (float64, bool) {
	self := PeerInfo{Region: m.cfg.Region, Caps: advertCaps(m.cfg.Capabilities), Load: load, ActiveJobs: active,
		MaxConcurrent: maxConcurrent, Available: active < maxConcurrent, RTT: time.Nanosecond}
	req := selectRequest{intent: call.Intent, model: call.Model, region: call.Constraints.Region}
	if !eligible(&self, req) || self.EchoOnly(call.Intent) {
		return 0, false
	}
	return ratedValue(&self, req, 0, m.cfg.BreakerThreshold, 1), true
}
