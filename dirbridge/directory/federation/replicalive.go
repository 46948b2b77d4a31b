package federation

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// LiveSink receives verified ephemeral node state: from snapshots and from
// liveness digests. A Sink that implements it (the directory adapter) gets
// last_seen, load and task counters; one that does not sees only events.
type LiveSink interface {
	ApplyLive(ctx context.Context, nodes []LiveNode)
}

// BatchSink is a Sink that applies a page of changes in one step (one
// transaction for a page of the tail, or a whole snapshot).
type BatchSink interface {
	ApplyStates(ctx context.Context, chs []*StateChange) error
}

// LivenessNow is the instant at which the replica judges liveness: the
// seed's clock at its newest digest plus the time since that digest
// arrived, capped at two digest intervals. While digests flow this tracks
// the seed's clock (no skew against the seed-stamped last_seen values);
// when they stop — the seed is down — it freezes, so the replica keeps
// serving the nodes that were live rather than expiring them all on its own
// clock, until its lag passes MaxLag and discovery answers 503 (DIR-FED-08).
// Before any digest it is the replica's own clock.
func (r *Replica) LivenessNow() time.Time {
	ms := r.liveSeedMs.Load()
	now := r.cfg.Now()
	if ms == 0 {
		return now
	}
	el := now.Sub(time.Unix(0, r.liveRecvNs.Load()))
	el = min(max(el, 0), 2*r.cfg.LivenessInterval)
	return time.UnixMilli(ms).Add(el)
}

// applyLiveness applies a verified digest: newer last_seen supersedes older
// in the Sink; the liveness clock and, when the seed's head
// is not beyond ours, the lag confirmation move to the digest's time.
func (r *Replica) applyLiveness(ctx context.Context, d *LivenessDigest, source string) {
	if !r.ready.Load() {
		return // no verified node state to attach it to yet
	}
	if ls, ok := r.cfg.Sink.(LiveSink); ok && len(d.Nodes) > 0 {
		ls.ApplyLive(ctx, d.Nodes)
	}
	if d.TsMs > r.liveSeedMs.Load() {
		r.liveSeedMs.Store(d.TsMs)
		r.liveRecvNs.Store(r.cfg.Now().UnixNano())
	}
	if d.HeadSeq <= r.appliedSeq.Load() {
		// Signed by the seed at ts_ms: we held its head then. A replayed
		// old digest cannot move this forward (max).
		if d.TsMs > r.lastConfirmed.Load() {
			r.lastConfirmed.Store(d.TsMs)
		}
	} else {
		r.triggerPoll() // an event we have not seen: gossip lost it
	}
	if source != "poll" {
		r.lastGossipLive.Store(r.cfg.Now().UnixNano())
	}
	if since := d.TsMs - livenessOverlap.Milliseconds(); since > r.liveSinceMs.Load() {
		r.liveSinceMs.Store(since)
	}
	r.metrics.liveness.WithLabelValues(source).Inc()
}

// pollLiveness fetches a digest over HTTP unless gossip or a long-poll
// delivered one within the last interval (both off, lost, or partitioned).
func (r *Replica) pollLiveness(ctx context.Context) {
	if last := r.lastGossipLive.Load(); last != 0 && r.cfg.Now().Sub(time.Unix(0, last)) < r.cfg.LivenessInterval {
		return
	}
	path := "/v1/liveness?since_ms=" + strconv.FormatInt(max(r.liveSinceMs.Load(), 0), 10)
	resp, body, err := r.seedGet(ctx, path, true, maxSnapshotBytes)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("polling liveness", "error", err)
		}
		return
	}
	if resp.StatusCode != http.StatusOK {
		// A seed without a live feed answers 404: nothing to poll.
		r.log.Debug("polling liveness", "error", seedError(resp.StatusCode, body))
		return
	}
	d, err := VerifyLiveness(r.seedKey, r.seedDID, body)
	if err != nil {
		r.reject("liveness", err)
		return
	}
	r.applyLiveness(ctx, d, "poll")
}

// liveOfSnapshot converts a snapshot row's ephemeral members.
func liveOfSnapshot(n *SnapshotNode) LiveNode {
	l := LiveNode{NodeID: n.NodeID, Available: n.Available, Load: n.Load, Reputation: n.ReputationScore, SLAP95Ms: n.SLAP95Ms}
	if t, err := parseRFC3339(n.LastSeen); err == nil {
		l.LastSeenMs = t.UnixMilli()
	}
	if n.ActiveJobs != nil {
		l.ActiveJobs = *n.ActiveJobs
	}
	if n.CompletedTasks != nil {
		l.CompletedTasks = *n.CompletedTasks
	}
	return l
}
