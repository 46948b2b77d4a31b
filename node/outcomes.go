package node

import (
	"sync/atomic"

	"github.com/meshnode/meshnode/wire"
)

// Outcomes are the engine's cumulative execution outcomes since start, the
// input of the heartbeat's metrics batch (iicp-dir.md §3.2,
// iicp-semantics.md §11.2 outcome-v2). Only tasks this node took on count:
//
//   - Success: a RESPONSE with status success;
//   - Failed: the node's own failures, the §11.2 "adapter error, 5xx
//     backend" and "timed out (504)" rows: backend_error, internal_error,
//     task_timeout.
//
// Refusals that say nothing about how the node executes — authorization
// (401), validation (422), unknown intent or model, a duplicate task_id,
// capacity_exceeded (§2.2 asks the caller to go elsewhere) and a caller
// that went away — are in neither count. The heartbeat has no timeout
// counter, so timeouts are reported as failures (docs/spec-decisions.md
// "heartbeat outcome counters").
type Outcomes struct {
	Success int64
	Failed  int64
	// SuccessLatencyMs is the summed latency of the successful tasks, so a
	// period's mean is (Δ SuccessLatencyMs) / (Δ Success).
	SuccessLatencyMs int64
}

// outcomeCounters are updated once per RESPONSE, lock-free.
type outcomeCounters struct {
	success, failed, latencyMs atomic.Int64
}

func (c *outcomeCounters) add(r *wire.Response) {
	if r.Error == nil {
		c.success.Add(1)
		c.latencyMs.Add(max(r.Metrics.LatencyMs, 0))
		return
	}
	switch r.Error.Code {
	case wire.CodeBackendError, wire.CodeInternal, wire.CodeTaskTimeout:
		c.failed.Add(1)
	}
}

// Outcomes returns the cumulative counts. The values are read one after
// another, not as one snapshot: a task finishing meanwhile may have its
// latency in one period and its count in the next (the mean is advisory);
// the counts themselves are never lost or counted twice.
func (e *Engine) Outcomes() Outcomes {
	return Outcomes{
		Success:          e.outcomes.success.Load(),
		Failed:           e.outcomes.failed.Load(),
		SuccessLatencyMs: e.outcomes.latencyMs.Load(),
	}
}
