package directory

import (
	"math"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// minScore: nodes scoring below it are excluded (DIR-DISC-04/07, DIS-4).
const minScore = wire.MinScore

// outsideWindowFactor is availability_factor outside declared sharing
// windows (iicp-semantics.md §4).
const outsideWindowFactor = 0.5

// score computes the canonical directory score of one node for a query
// with the one §3.1 formula (wire.Score). The spec leaves the load,
// capacity and region terms open; their definitions are recorded in
// docs/spec-decisions.md (## directory):
//
//	availability_factor  1 with no windows; inside a declared UTC window 1; outside 0.5
//	normalized_load      heartbeat load clamped to [0,1], else active_jobs/max_concurrent
//	capacity_ratio       wire.CapacityRatio: min(1, log2(1+max_concurrent)/log2(1+16))
//	region_match         wire.RegionMatch: 1 exact (case-insensitive) or no preference;
//	                     0.5 same leading label ("eu-west" vs "eu-central"); 0 otherwise
//	reputation_score     stored reputation, default 0.5
func score(rec *NodeRecord, st *nodeState, region string, now time.Time) float64 {
	in := scoreInput(rec, st, availabilityFactor(rec.Availability, now))
	in.Region = wire.RegionMatch(region, rec.Region)
	return wire.RoundScore(wire.Score(in))
}

// scoreInput holds the query-independent factors of a node's score.
func scoreInput(rec *NodeRecord, st *nodeState, availability float64) wire.ScoreInput {
	return wire.ScoreInput{Availability: availability, Load: normalizedLoad(rec, st),
		Capacity: wire.CapacityRatio(rec.Limits.MaxConcurrent), Reputation: st.Reputation}
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
		return wire.Clamp01(st.Load)
	}
	if rec.Limits.MaxConcurrent <= 0 {
		return 0
	}
	return wire.Clamp01(float64(st.ActiveJobs) / float64(rec.Limits.MaxConcurrent))
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

// healthScore is in [0,1]; a stale node is offline (0). The latency
// component prefers the quorum-gated proxy-observed latency (observedMs,
// telemetry.go) over the node's self-declared sla_p95_ms.
func healthScore(st *nodeState, live bool, observedMs *float64) float64 {
	if !live {
		return 0
	}
	lat := noLatencyEvidence
	switch {
	case observedMs != nil:
		lat = latencyCurve(*observedMs)
	case st.SLAP95Ms != nil:
		lat = latencyCurve(float64(*st.SLAP95Ms))
	}
	return math.Round((wHealthReach+wHealthLatency*lat)*10000) / 10000
}

// latencyCurve maps 50 ms → 1 and 500 ms → 0 linearly (ADR-044 curve).
func latencyCurve(ms float64) float64 { return wire.Clamp01((500 - ms) / 450) }

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
