package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// maxEchoTaskID bounds the task_id echoed in a RESPONSE. A valid task_id is a
// 36-byte UUID; anything longer was rejected and is not worth echoing.
const maxEchoTaskID = 64

// generatedByAI holds the two values a RESPONSE's generated_by_ai points
// to: shared, so a task allocates no bool (nothing writes through the
// pointer).
var generatedByAI = [2]bool{false, true}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nullResult is the RESPONSE result on failure (iicp-core.md §3.2: result = null).
var nullResult = json.RawMessage("null")

// finish turns an outcome into the RESPONSE and records metrics, stats and
// one log line. Nothing here reads the payload.
func (e *Engine) finish(call *wire.Call, caller wire.Caller, start time.Time, qos string, out outcome) *wire.Response {
	elapsed := e.set.now().Sub(start)
	r := &wire.Response{
		Status:  wire.StatusSuccess,
		Metrics: wire.Metrics{LatencyMs: elapsed.Milliseconds()},
		NodeID:  e.auth.getNodeID(),
	}
	if len(call.TaskID) <= maxEchoTaskID {
		r.TaskID = call.TaskID
	}
	if len(call.CallID) <= wire.MaxNameLen && len(call.SessionID) <= wire.MaxNameLen {
		// The native transport matches RESPONSE to CALL by these (iicp-framing.md §4.4).
		r.CallID, r.SessionID = call.CallID, call.SessionID
	}
	if out.err != nil {
		r.Status = wire.StatusError
		if out.timeout {
			r.Status = wire.StatusTimeout
		}
		r.Result = nullResult
		r.Error = out.err
		r.Code = out.err.Code
	} else {
		r.Result = out.res.Output
		if len(r.Result) == 0 {
			r.Result = json.RawMessage("{}")
		}
		r.Metrics.TokensUsed = out.res.TokensUsed
		r.ModelUsed = out.res.Model
		r.GeneratedByAI = &generatedByAI[boolIndex(out.ai)]
		e.observeDuration(elapsed)
	}
	e.record(call, caller, qos, r, elapsed)
	return r
}

// record updates metrics and stats and logs the outcome. The task_id is
// logged only once validation proved it is a well-formed identifier.
func (e *Engine) record(call *wire.Call, caller wire.Caller, qos string, r *wire.Response, elapsed time.Duration) {
	intent := labelOther
	if _, ok := e.intents[call.Intent]; ok {
		intent = call.Intent
	}
	outcome := outcomeLabel(r)
	e.met.tasksBy.get([2]string{intent, r.Status}).Inc()
	e.met.latencyBy.get(intent).Observe(float64(elapsed.Microseconds()) / 1000)
	if r.Metrics.TokensUsed > 0 {
		e.met.tokensBy.get(intent).Add(float64(r.Metrics.TokensUsed))
	}
	e.met.outcomesBy.get([3]string{intent, outcome, transportLabel(caller.Transport)}).Inc()
	e.countServed(outcome)
	e.outcomes.add(r)

	if qos == "" {
		// Refused before validation: neither task_id nor intent is trusted text.
		return
	}
	level, msg := slog.LevelInfo, "task failed"
	if r.Error == nil {
		level, msg = slog.LevelDebug, "task done"
	}
	if !e.log.Enabled(context.Background(), level) {
		return // hot path: build no attributes for a disabled level
	}
	e.log.LogAttrs(context.Background(), level, msg, slog.String("task_id", call.TaskID),
		slog.String("intent", intent), slog.String("qos", qos), slog.String("outcome", outcome),
		slog.Int64("latency_ms", r.Metrics.LatencyMs), slog.String("transport", transportLabel(caller.Transport)))
}

func (e *Engine) countServed(outcome string) {
	v, ok := e.served.Load(outcome)
	if !ok {
		v, _ = e.served.LoadOrStore(outcome, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// observeDuration folds a successful task's duration into the EWMA
// (weight 1/8) behind retry_after_ms.
func (e *Engine) observeDuration(d time.Duration) {
	ms := max(d.Milliseconds(), 1)
	for {
		old := e.ewmaMs.Load()
		next := ms
		if old > 0 {
			next = old + (ms-old)/8
		}
		if e.ewmaMs.CompareAndSwap(old, next) {
			return
		}
	}
}

// retryAfter is the retry_after_ms hint on capacity_exceeded
// (iicp-semantics.md §2.2): half a typical task duration, the expected wait
// for the next slot to free when tasks finish at random times.
func (e *Engine) retryAfter() time.Duration {
	ms := e.ewmaMs.Load()
	if ms == 0 {
		return DefaultRetryAfter
	}
	return min(max(time.Duration(ms/2)*time.Millisecond, MinRetryAfter), MaxRetryAfter)
}
