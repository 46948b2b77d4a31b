package mesh

import (
	"math/rand/v2"
	"slices"
	"time"

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
		Reputation: wire.Clamp01(1 - float64(failures)/float64(threshold))}
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

// rank orders peers by descending selection value. Peers with equal value
// are shuffled so equally good peers share the load.
func rank(peers []PeerInfo, req selectRequest, failures func(PeerInfo) int, threshold int) []PeerInfo {
	type scored struct {
		p PeerInfo
		v float64
	}
	s := make([]scored, 0, len(peers))
	for _, p := range peers {
		s = append(s, scored{p: p, v: selectionValue(&p, req, failures(p), threshold)})
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	slices.SortStableFunc(s, func(a, b scored) int {
		switch {
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
	failures := func(p PeerInfo) int { return m.breakers.Consecutive(p.PeerID) }
	return rank(list, req, failures, m.cfg.BreakerThreshold)
}
