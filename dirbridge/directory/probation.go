package directory

import (
	"math"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Probation (iicp-dir.md §3.4 QoS table, iicp-semantics.md §11.2/§11.3,
// decision in docs/spec-decisions.md ## directory).
//
// The §3.4 table hides nodes with fewer than 100 completed tasks from
// qos=interactive, but deployed SDKs send qos=interactive on every
// discover, so a new node would never be found and never earn the tasks.
// §11.2 (newer) also says self-reported counters MUST NOT gate routing on
// their own. meshnode therefore:
//
//   - graduates a node when it has ProbationMinTasks completed tasks AND has
//     been registered for ProbationMinAge (age is directory-observed);
//   - answers qos=interactive with graduated nodes plus probationary nodes
//     that fill the slots graduated nodes leave empty and at most
//     floor(limit × ProbationShare) exploration slots beside them;
//   - lets at most ProbationPerNetwork probationary nodes from one source
//     network (/24 IPv4, /48 IPv6) into one answer, so a burst of fresh
//     registrations from one place cannot crowd a list;
//   - keeps qos=realtime closed to probation (graduated, 10× the tasks and
//     reputation ≥ 0.8).
//
// The list stays sorted by score (DIR-DISC-02 is a MUST); probation decides
// membership, not order.

// graduatesAt is when a node at this state leaves probation (zero: not at
// this state; completed tasks only grow, so the answer only moves closer).
func (s *Server) graduatesAt(rec *NodeRecord, st *nodeState) time.Time {
	if st.CompletedTasks < s.cfg.ProbationMinTasks {
		return time.Time{}
	}
	if s.cfg.ProbationMinAge < 0 {
		return rec.RegisteredAt.Add(-time.Nanosecond) // registered = graduated
	}
	return rec.RegisteredAt.Add(s.cfg.ProbationMinAge)
}

// graduated reports whether the node is out of probation at now.
func (s *Server) graduated(rec *NodeRecord, st *nodeState, now time.Time) bool {
	g := s.graduatesAt(rec, st)
	return !g.IsZero() && !g.After(now)
}

// probationSlots is how many places of a limit-long interactive answer
// probationary nodes may take from graduated ones.
func (s *Server) probationSlots(limit int) int {
	if s.cfg.ProbationShare <= 0 {
		return 0
	}
	return int(math.Floor(float64(limit) * s.cfg.ProbationShare))
}

// mergeProbation builds the interactive answer from the best graduated (g)
// and best probationary (p) candidates, both sorted: probationary nodes fill
// what g leaves empty and take up to probationSlots places beside it.
func (s *Server) mergeProbation(g, p []scored, k int) []scored {
	pTake := min(len(p), max(s.probationSlots(k), k-len(g)))
	gTake := min(len(g), k-pTake)
	out := make([]scored, 0, gTake+pTake)
	out = append(out, g[:gTake]...)
	for _, c := range p[:pTake] {
		out = insertTop(out, c, gTake+pTake)
	}
	return out
}

// eligible applies every per-node filter of q except probation class and
// the score floor: availability, liveness, reputation, modality, CIP,
// pricing.
func (s *Server) eligible(q *query, e *entry, st *nodeState, now time.Time) bool {
	switch {
	case !st.Available || st.Reach.unreachable() || !s.live(st, now) || st.Reputation < q.minReputation:
		return false
	case q.modality != "" && !contains(e.modalities.get(q.intent), q.modality):
		return false
	case q.cipCapable && !cipCapable(e.rec):
		return false
	case q.maxMultiplier > 0 && defaultMultiplier > q.maxMultiplier:
		return false
	}
	return true
}

// passesRealtime is the §3.4 realtime row on top of graduation.
func (s *Server) passesRealtime(st *nodeState) bool {
	return st.CompletedTasks >= realtimeProbationFactor*s.cfg.ProbationMinTasks && st.Reputation >= realtimeMinReputation
}

// networkKey is the node's source network for the per-network cap: the
// observed address masked to /24 (IPv4) or /48 (IPv6), else the endpoint
// host (a node that never sent a request through us, e.g. a replica copy).
func networkKey(rec *NodeRecord, st *nodeState) string {
	if a, err := netip.ParseAddr(st.ObservedIP); err == nil {
		a = a.Unmap()
		bits := 48
		if a.Is4() {
			bits = 24
		}
		if p, err := a.Prefix(bits); err == nil {
			return p.String()
		}
	}
	if u, err := url.Parse(rec.Endpoint); err == nil {
		return "host:" + strings.ToLower(u.Hostname())
	}
	return "node:" + rec.NodeID
}

// candidates returns the best k nodes eligible now for q, sorted by score
// descending (ties by node_id for a stable order), applying probation per
// q.qos. It walks the intent's ranking (rank.go) from the top and stops
// once no further node can enter, so its cost follows k and the filtered
// prefix, not the number of nodes serving the intent.
func (s *Server) candidates(q *query, now time.Time, k int, skip func(*entry) bool) []scored {
	r := s.store.idx.ranking(q.intent)
	if r == nil || k <= 0 {
		return nil
	}
	r.graduate(now)
	rq := s.store.idx.policy.regions.query(q.region)
	// A walked item is never inactive (rank.go), so eligible's first row
	// reduces to liveness and reputation, read from the item; the rarer
	// filters take the full check.
	liveFrom := s.liveCutoff(now)
	full := q.modality != "" || q.cipCapable || q.maxMultiplier > 0
	eval := func(it *rankItem) (float64, bool) {
		switch {
		case it.lastSeen < liveFrom || it.rep < q.minReputation:
			return 0, false
		case full && !s.eligible(q, it.e, it.st, now):
			return 0, false
		case skip != nil && skip(it.e):
			return 0, false
		case q.qos == wire.QoSRealtime && !s.passesRealtime(it.st):
			return 0, false
		}
		sc := it.score(&rq, now)
		return sc, sc >= minScore && sc >= q.minScore
	}
	switch q.qos {
	case wire.QoSRealtime:
		return r.top(topSpec{k: k, lists: []int{classGraduated}, eval: eval})
	case wire.QoSInteractive:
		g := r.top(topSpec{k: k, lists: []int{classGraduated}, eval: eval})
		p := r.top(topSpec{k: k, lists: []int{classProbation}, eval: eval, perNetwork: s.cfg.ProbationPerNetwork})
		return s.mergeProbation(g, p, k)
	}
	return r.top(topSpec{k: k, lists: []int{classGraduated, classProbation}, eval: eval})
}
