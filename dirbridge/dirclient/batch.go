package dirclient

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

// PendingMetrics is an unacknowledged batch as the CredentialStore keeps it.
type PendingMetrics struct {
	ID      string                `json:"id"`
	Metrics wire.HeartbeatMetrics `json:"metrics"`
}

// empty reports a batch with no outcomes (nothing to lose on a restart).
func (b *batch) empty() bool { return b.metrics.TasksSuccess == 0 && b.metrics.TasksFailed == 0 }

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

// restore makes a batch saved before a restart the pending one. The
// engine's counters start again at zero, so the base stays zero.
func (b *batcher) restore(p *PendingMetrics) {
	if p != nil && wire.ValidMetricsBatchID(p.ID) {
		b.pending = &batch{id: p.ID, metrics: p.Metrics}
	}
}

// next returns the batch to send: the pending one, or a new one covering
// the outcomes since the last batch (zero counts included: every
// heartbeat carries its period's counters). fresh reports a new batch.
func (b *batcher) next(cur Outcomes) (nb batch, fresh bool) {
	if b.pending != nil {
		return *b.pending, false
	}
	d := Outcomes{
		Success:          max(cur.Success-b.base.Success, 0),
		Failed:           max(cur.Failed-b.base.Failed, 0),
		SuccessLatencyMs: max(cur.SuccessLatencyMs-b.base.SuccessLatencyMs, 0),
	}
	b.base = cur
	p := &batch{id: newBatchID(), metrics: wire.HeartbeatMetrics{TasksSuccess: d.Success, TasksFailed: d.Failed}}
	if d.Success > 0 {
		avg := float64(d.SuccessLatencyMs) / float64(d.Success)
		p.metrics.AvgLatencyMs = &avg
	}
	b.pending = p
	return *p, true
}

// acknowledged settles the pending batch after a 200 PONG and reports
// whether it did. A directory that names the batch in
// metrics_batch_accepted applied it (or already had). One that labels its
// score (reputation_model) speaks §3.2, so a null or another batch id
// means "not accepted": ours stays pending. One with neither predates
// batch ids and took the heartbeat as it came, so resending would count
// it twice (docs/spec-decisions.md "heartbeat outcome counters").
func (b *batcher) acknowledged(p *wire.Pong, r *Reputation) bool {
	if b.pending == nil {
		return false
	}
	named := p.MetricsBatchAccepted != nil
	if (named && *p.MetricsBatchAccepted != b.pending.id) || (!named && p.ReputationModel != "") {
		r.PendingBatch = b.pending.id
		return false
	}
	if p.MetricsBatchAccepted != nil {
		r.BatchAccepted = *p.MetricsBatchAccepted
	}
	r.ReportedSuccess += b.pending.metrics.TasksSuccess
	r.ReportedFailed += b.pending.metrics.TasksFailed
	r.PendingBatch = ""
	b.pending = nil
	return true
}

// newBatchID is "mb-" and 16 random hex digits: opaque, printable, and
// free of task content, secrets or user identifiers (§3.2).
func newBatchID() string {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "mb-" + hex.EncodeToString(raw[:])
}

// nextBatch cuts the heartbeat's metrics batch. A new batch with outcomes
// is saved with the credentials before it is sent, so a restart resends
// it instead of losing it.
func (s *Session) nextBatch() batch {
	s.mu.Lock()
	b, fresh := s.batches.next(s.cfg.Outcomes())
	s.status.Reputation.PendingBatch = b.id
	s.mu.Unlock()
	if fresh && !b.empty() {
		s.keepPending(&PendingMetrics{ID: b.id, Metrics: b.metrics})
	}
	return b
}

// keepPending saves (or, with nil, clears) the unacknowledged batch with
// the credentials. A clear of nothing saved writes nothing.
func (s *Session) keepPending(p *PendingMetrics) {
	s.mu.Lock()
	if p == nil && s.creds.PendingMetrics == nil {
		s.mu.Unlock()
		return
	}
	s.creds.PendingMetrics = p
	c := s.creds
	s.mu.Unlock()
	if err := s.cfg.Store.Save(s.cfg.Client.URL(), c); err != nil {
		s.log.Warn("saving the pending metrics batch; its outcomes are lost if the node restarts before it is acknowledged", "error", err)
	}
}
