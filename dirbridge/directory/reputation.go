package directory

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Reputation, iicp-semantics.md §11 (model outcome-v2). The directory's only
// outcome signal is the heartbeat's self-reported batch (iicp-dir.md §3.2:
// metrics.tasks_success, metrics.tasks_failed), applied once per
// metrics_batch_id (REP-09). What cannot be applied, and why, is recorded
// in docs/spec-decisions.md (## directory): the −0.10 timeout delta (the
// heartbeat has no timeout count) and latency outcomes (advisory only in
// outcome-v2, never a reputation input).
const (
	reputationModel = "outcome-v2"
	// §11.2 per-task deltas.
	repSuccessDelta = 0.01
	repFailureDelta = -0.05
	// §11.2 RT-01: positive part of one heartbeat's sum.
	repMaxHeartbeatGain = 0.10
	// §11.6 RT-01b: positive gain per node per rolling hour, the window
	// opening at the first positive event.
	repMaxHourlyGain = 0.20
	repHourlyWindow  = time.Hour
	// maxTasksPerSlotSecond bounds the success count one heartbeat may add
	// (§11.2 "counters are advisory": clamp to a realistic single-node
	// throughput, never reject). 10 tasks/s per concurrency slot is far
	// above any LLM backend and still stops a tally from being driven to
	// the validation maximum.
	maxTasksPerSlotSecond = 10
	// repPrecision keeps repeated ±0.01 steps from accumulating binary
	// rounding noise (0.5 + 10×0.01 is exactly 0.6 after rounding).
	repPrecision = 1e6
)

// outcome is the effect of one accepted metrics batch.
type outcome struct {
	success, failed int64
}

// creditedSuccess clamps a reported success count to what the node could
// have served since its previous heartbeat (at least one interval).
func (s *Server) creditedSuccess(rec *NodeRecord, old *nodeState, reported int64, now time.Time) int64 {
	elapsed := max(now.Sub(old.LastSeen), s.cfg.HeartbeatInterval)
	slots := int64(max(rec.Limits.MaxConcurrent, 1))
	ceiling := slots * int64(math.Ceil(elapsed.Seconds())) * maxTasksPerSlotSecond
	return min(reported, ceiling)
}

// applyOutcome updates next (a copy of the published state) for one batch:
// counters, then the §11.2 sum with the RT-01 per-heartbeat and RT-01b
// hourly caps on its positive part. Negative sums apply in full and neither
// consume nor restore the hourly budget. The score is clamped to [0,1]
// before it is stored (§11.4).
func applyOutcome(next *nodeState, o outcome, now time.Time) {
	next.CompletedTasks += o.success
	next.FailedTasks += o.failed
	sum := repSuccessDelta*float64(o.success) + repFailureDelta*float64(o.failed)
	pos := min(max(sum, 0), repMaxHeartbeatGain)
	neg := min(sum, 0)
	if pos > 0 {
		if next.RepWindowStart == nil || now.Sub(*next.RepWindowStart) >= repHourlyWindow {
			t := now
			next.RepWindowStart, next.RepHourlyGain = &t, 0
		}
		pos = min(pos, max(repMaxHourlyGain-next.RepHourlyGain, 0))
		next.RepHourlyGain = roundRep(next.RepHourlyGain + pos)
	}
	next.Reputation = roundRep(wire.Clamp01(next.Reputation + pos + neg))
}

func roundRep(v float64) float64 { return math.Round(v*repPrecision) / repPrecision }

// newReputationEpoch is the opaque identifier of this directory's
// outcome-v2 score epoch (iicp-dir.md §3.2 PONG reputation_epoch). It is
// created once with the database: meshnode never held legacy scores, so
// its first epoch starts every node at the neutral 0.5.
func newReputationEpoch() ([]byte, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return []byte(reputationModel + "/" + hex.EncodeToString(b)), nil
}
