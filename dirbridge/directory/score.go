package directory

import (
	"math"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Phase 3 weights, iicp-semantics.md §3.1 (no ?model= parameter).
const (
	wAvailability = 0.35
	wLoad         = 0.28
	wCapacity     = 0.18
	wRegion       = 0.09
	wReputation   = 0.10
)

// minScore: nodes scoring below it are excluded (DIR-DISC-04/07, DIS-4).
const minScore = 0.1

// capacityRef is the max_concurrent at which capacity_ratio saturates: the
// ratio grows with log2(1+max_concurrent) so a 16-slot node is "full
// capacity" and small nodes are not crushed by huge ones.
const capacityRef = 16

// outsideWindowFactor is availability_factor outside declared sharing
// windows (iicp-semantics.md §4).
const outsideWindowFactor = 0.5

// score computes the canonical directory score of one node for a query.
// The spec leaves the load, capacity and region terms open; their
// definitions are recorded in docs/spec-decisions.md (## directory):
//
//	availability_factor  1 with no windows; inside a declared UTC window 1; outside 0.5
//	normalized_load      heartbeat load clamped to [0,1], else active_jobs/max_concurrent
//	capacity_ratio       min(1, log2(1+max_concurrent)/log2(1+16))
//	region_match         1 exact (case-insensitive) or no preference; 0.5 same
//	                     leading label ("eu-west" vs "eu-central"); 0 otherwise
//	reputation_score     stored reputation, default 0.5
func score(rec *NodeRecord, st *nodeState, region string, now time.Time) float64 {
	return scoreFinish(scoreBase(rec, st, availabilityFactor(rec.Availability, now)), regionMatch(region, rec.Region), clamp01(st.Reputation))
}

// scoreBase is the sum of the terms that do not depend on the query. The
// explicit conversion rounds it, so a cached base gives bit-identical
// scores to a fresh one.
func scoreBase(rec *NodeRecord, st *nodeState, availability float64) float64 {
	return float64(wAvailability*availability + wLoad*(1-normalizedLoad(rec, st)) + wCapacity*capacityRatio(rec.Limits.MaxConcurrent))
}

// scoreFinish adds the region and reputation terms and rounds to 4 decimals.
func scoreFinish(base, region, reputation float64) float64 {
	s := float64(base+wRegion*region) + wReputation*reputation
	return math.Round(clamp01(s)*10000) / 10000
}

func availabilityFactor(wins []wire.AvailabilityWindow, now time.Time) float64 {
	if len(wins) == 0 {
		return 1
	}
	u := now.UTC()
	minute := u.Hour()*60 + u.Minute()
	for _, w := range wins {
		start, ok1 := hhmm(w.Start)
		end, ok2 := hhmm(w.End)
		if !ok1 || !ok2 {
			continue
		}
		if start <= end && minute >= start && minute < end {
			return 1
		}
		if start > end && (minute >= start || minute < end) { // window wraps midnight
			return 1
		}
	}
	return outsideWindowFactor
}

func hhmm(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	return h*60 + m, h < 24 && m < 60
}

func normalizedLoad(rec *NodeRecord, st *nodeState) float64 {
	if st.LoadReported {
		return clamp01(st.Load)
	}
	if rec.Limits.MaxConcurrent <= 0 {
		return 0
	}
	return clamp01(float64(st.ActiveJobs) / float64(rec.Limits.MaxConcurrent))
}

func capacityRatio(maxConcurrent int) float64 {
	if maxConcurrent <= 0 {
		return 0
	}
	return math.Min(1, math.Log2(1+float64(maxConcurrent))/math.Log2(1+capacityRef))
}

func regionMatch(want, have string) float64 {
	if want == "" || strings.EqualFold(want, have) {
		return 1
	}
	w, _, _ := strings.Cut(strings.ToLower(want), "-")
	h, _, _ := strings.Cut(strings.ToLower(have), "-")
	if w != "" && w == h {
		return 0.5
	}
	return 0
}

func clamp01(v float64) float64 {
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}

// Health (ADR-044 as amended by #492, iicp-dir.md §3.4 health_label):
// liveness-only, reachability 0.70 + latency 0.30.
const (
	wHealthReach   = 0.70
	wHealthLatency = 0.30
	// noLatencyEvidence is the latency component without measurements: it
	// puts a live node exactly at the "healthy" floor (DIR-NODE-HEALTH-03).
	noLatencyEvidence = 0.5
)

// healthScore is in [0,1]; a stale node is offline (0).
func healthScore(st *nodeState, live bool) float64 {
	if !live {
		return 0
	}
	lat := noLatencyEvidence
	if st.SLAP95Ms != nil {
		lat = latencyCurve(float64(*st.SLAP95Ms))
	}
	return math.Round((wHealthReach+wHealthLatency*lat)*10000) / 10000
}

// latencyCurve maps 50 ms → 1 and 500 ms → 0 linearly (ADR-044 curve).
func latencyCurve(ms float64) float64 { return clamp01((500 - ms) / 450) }

func healthLabel(score float64, live bool) string {
	switch {
	case !live:
		return "offline"
	case score >= 0.85:
		return "healthy"
	case score >= 0.65:
		return "degraded"
	case score >= 0.40:
		return "impaired"
	}
	return "critical"
}

// reputationTier buckets reputation for DIR-CIP-03 (bronze is the floor).
func reputationTier(rep float64) string {
	switch {
	case rep >= 0.9:
		return "platinum"
	case rep >= 0.8:
		return "gold"
	case rep >= 0.65:
		return "silver"
	}
	return "bronze"
}
