package client

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/meshnode/meshnode/wire"
)

// Outcomes are a node's cumulative task outcomes since it started (the
// engine's node.Outcomes): what heartbeat metrics batches are cut from.
type Outcomes struct {
	Success          int64
	Failed           int64
	SuccessLatencyMs int64
}

// Reputation is what the directory reports back on each heartbeat
// (iicp-dir.md §3.2 PONG), kept for `meshnode status`.
type Reputation struct {
	// Score is the directory's reputation_score; nil until a PONG carries one.
	Score *float64 `json:"reputation_score,omitempty"`
	Model string   `json:"reputation_model,omitempty"`
	Epoch string   `json:"reputation_epoch,omitempty"`
	// BatchAccepted is the last metrics_batch_id the directory acknowledged.
	BatchAccepted string `json:"metrics_batch_accepted,omitempty"`
	// ReportedSuccess and ReportedFailed are the outcomes delivered to this
	// directory in acknowledged batches.
	ReportedSuccess int64 `json:"reported_tasks_success"`
	ReportedFailed  int64 `json:"reported_tasks_failed"`
	// PendingBatch is the batch sent but not yet acknowledged (retried as is).
	PendingBatch string `json:"pending_metrics_batch,omitempty"`
}

func (r *Reputation) update(p *wire.Pong) {
	if p.ReputationScore != nil {
		v := *p.ReputationScore
		r.Score = &v
	}
	if p.ReputationModel != "" {
		r.Model = p.ReputationModel
	}
	if p.ReputationEpoch != "" {
		r.Epoch = p.ReputationEpoch
	}
}

// batch is one metrics batch: the outcomes of one period under one id.
type batch struct {
	id      string
	metrics wire.HeartbeatMetrics
}

// batcher cuts metrics batches for one directory (iicp-dir.md §3.2): at
// most one batch is unacknowledged, and it is resent unchanged, under the
// same metrics_batch_id, until the directory acknowledges it, so a
// heartbeat lost on the way back is never counted twice (REP-09). The
// next batch covers everything since the previous one, so no outcome is
// lost either. Callers hold the Session's mutex.
type batcher struct {
	base    Outcomes // the counts the batches so far cover
	pending *batch
}

// next returns the batch to send: the pending one, or a new one covering
// the outcomes since the last batch (zero counts included: every
// heartbeat carries its period's counters).
func (b *batcher) next(cur Outcomes) batch {
	if b.pending != nil {
		return *b.pending
	}
	d := Outcomes{
		Success:          max(cur.Success-b.base.Success, 0),
		Failed:           max(cur.Failed-b.base.Failed, 0),
		SuccessLatencyMs: max(cur.SuccessLatencyMs-b.base.SuccessLatencyMs, 0),
	}
	b.base = cur
	nb := &batch{id: newBatchID(), metrics: wire.HeartbeatMetrics{TasksSuccess: d.Success, TasksFailed: d.Failed}}
	if d.Success > 0 {
		avg := float64(d.SuccessLatencyMs) / float64(d.Success)
		nb.metrics.AvgLatencyMs = &avg
	}
	b.pending = nb
	return *nb
}

// acknowledged settles the pending batch after a 200 PONG. A directory
// that names the batch in metrics_batch_accepted applied it (or already
// had); one that sends no metrics_batch_accepted predates batch ids and
// took the heartbeat as it came, so resending would count it twice
// (docs/spec-decisions.md "heartbeat outcome counters"). A PONG naming
// another batch leaves ours pending.
func (b *batcher) acknowledged(p *wire.Pong, r *Reputation) {
	if b.pending == nil {
		return
	}
	if p.MetricsBatchAccepted != nil && *p.MetricsBatchAccepted != b.pending.id {
		r.PendingBatch = b.pending.id
		return
	}
	if p.MetricsBatchAccepted != nil {
		r.BatchAccepted = *p.MetricsBatchAccepted
	}
	r.ReportedSuccess += b.pending.metrics.TasksSuccess
	r.ReportedFailed += b.pending.metrics.TasksFailed
	r.PendingBatch = ""
	b.pending = nil
}

// newBatchID is "mb-" and 16 random hex digits: opaque, printable, and
// free of task content, secrets or user identifiers (§3.2).
func newBatchID() string {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "mb-" + hex.EncodeToString(raw[:])
}
