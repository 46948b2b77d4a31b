package node

import (
	"time"

	"github.com/meshnode/meshnode/wire"
)

// The engine's defaults, listed once. Every Option overrides one of them.
const (
	// DefaultMaxConcurrent is the node's max_concurrent (TASK-3) when the
	// config leaves it zero. Small on purpose: a home node runs one local model.
	DefaultMaxConcurrent = 4

	// DefaultQoS is the class assumed when constraints.qos is absent
	// (schemas/task.json "default": "interactive").
	DefaultQoS = wire.QoSInteractive

	// DefaultRealtimeWait and DefaultInteractiveWait bound how long a CALL of
	// that class may wait for a slot to be handed over before it is refused
	// with capacity_exceeded. Each is 5% of the class latency budget
	// (iicp-semantics.md §11.1: 500 ms, 2000 ms), so the wait cannot degrade
	// the SLA (§2.2); longer waits trade caller latency for fewer node switches.
	DefaultRealtimeWait    = 25 * time.Millisecond
	DefaultInteractiveWait = 100 * time.Millisecond
	// Batch and best-effort are refused immediately (§2.2): their callers
	// retry elsewhere, and keeping them out of the hand-over queue means a
	// freed slot always goes to the latency-sensitive classes first.
	DefaultBatchWait      = 0
	DefaultBestEffortWait = 0

	// MaxAdmissionWaitShare caps any admission wait at this fraction of the
	// CALL's own timeout_ms, so waiting never eats the execution budget (TASK-4).
	MaxAdmissionWaitShare = 0.10

	// DefaultIdempotencyTTL is how long a task_id stays reserved (TASK-2).
	// It exceeds the largest timeout_ms (300 s) so every retry of an attempt
	// that could still be running is caught.
	DefaultIdempotencyTTL = 15 * time.Minute
	// DefaultIdempotencyCap bounds the reserved task_ids (≈100 B each); when
	// full the oldest is forgotten early, trading a shorter window for bounded memory.
	DefaultIdempotencyCap = 100_000

	// DefaultRetryAfter is the retry_after_ms hint before any task has finished.
	DefaultRetryAfter = time.Second
	// MinRetryAfter and MaxRetryAfter clamp the hint derived from observed
	// task durations.
	MinRetryAfter = 50 * time.Millisecond
	MaxRetryAfter = 30 * time.Second

	// DefaultHealthCacheTTL is how long a backend health probe result is
	// reused, so a polled /iicp/health cannot hammer the backend.
	DefaultHealthCacheTTL = 5 * time.Second
	// DefaultHealthProbeTimeout bounds one backend probe.
	DefaultHealthProbeTimeout = 2 * time.Second
)
