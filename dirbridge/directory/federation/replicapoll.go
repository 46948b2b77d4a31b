package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// poll pulls the event tail from the seed until the head (S.13 §5.3 steps
// 2–5). Events are verified in order and applied page by page; the first
// invalid event halts the round, the valid prefix stays applied, and the
// next round re-fetches from the last valid seq. IICP-E045 means we fell
// out of the rolling window: re-bootstrap from a snapshot.
func (r *Replica) poll(ctx context.Context) error {
	for page := 0; page < maxPagesPerPoll; page++ {
		since := r.appliedSeq.Load()
		path := "/v1/events?since_seq=" + strconv.FormatInt(since, 10) + "&limit=" + strconv.Itoa(pollPageLimit)
		resp, body, err := r.seedGet(ctx, path, false, maxEventsBody)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			err := seedError(resp.StatusCode, body)
			if isCode(body, wire.CodeE045) {
				r.log.Info("fell behind the seed's rolling window; re-bootstrapping", "applied_seq", since)
				return r.bootstrap(ctx, true)
			}
			return err
		}
		var er EventsResponse
		if err := json.Unmarshal(body, &er); err != nil {
			r.reject("poll", &VerifyError{Seq: since, Reason: fmt.Errorf("%w: events page", ErrMalformed)})
			return fmt.Errorf("decoding events page: %w", err)
		}
		more, err := r.applyPage(ctx, &er, "poll")
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// applyPage verifies and applies one page of the tail; more reports a full
// page with progress (there may be a next one). Events at or below our
// head are skipped: the poll and the long-poll may both have fetched them.
func (r *Replica) applyPage(ctx context.Context, er *EventsResponse, source string) (more bool, err error) {
	if err := r.checkGenesis(er.GenesisHash); err != nil {
		r.reject(source, err)
		return false, err
	}
	evs := er.Events
	for len(evs) > 0 && evs[0].Seq <= r.appliedSeq.Load() {
		evs = evs[1:]
	}
	n, err := r.applyEvents(ctx, evs, source, er.HeadSeq)
	if err != nil {
		return false, err
	}
	return len(er.Events) >= pollPageLimit && n > 0, nil
}

func isCode(body []byte, c wire.Code) bool {
	var env struct {
		Error *wire.Error `json:"error"`
	}
	return json.Unmarshal(body, &env) == nil && env.Error != nil && env.Error.Code == c
}

// applyGossip applies a pushed event when it is the next one; a gap
// (gossip lost or reordered a message) triggers an immediate poll, and
// anything at or below our head is a duplicate.
func (r *Replica) applyGossip(ctx context.Context, ev *Event) {
	head := r.appliedSeq.Load()
	r.log.Debug("gossip event", "seq", ev.Seq, "head", head)
	switch {
	case r.chain == nil || ev.Seq <= head:
		return
	case ev.Seq > head+1:
		r.triggerPoll()
		return
	}
	if _, err := r.applyEvents(ctx, []Event{*ev}, "gossip", ev.Seq); err != nil && ctx.Err() == nil {
		r.log.Warn("applying gossiped event", "seq", ev.Seq, "error", err)
		r.triggerPoll()
	}
}

// errGap: an event does not directly follow the head.
var errGap = errors.New("seq gap")

// applyEvents verifies evs in order against the chain and applies the valid
// prefix in one transaction together with the new chain head, so state and
// progress can never disagree after a crash. headSeq is the seed's head as
// reported with the events. It returns how many events were applied and the
// verification error that stopped it, if any.
func (r *Replica) applyEvents(ctx context.Context, evs []Event, source string, headSeq int64) (int, error) {
	if len(evs) == 0 {
		if headSeq <= r.appliedSeq.Load() {
			r.confirmHead(ctx)
		}
		return 0, nil
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	chain := *r.chain
	sigErrs := verifySignatures(r.seedKey, evs)
	exec := newStmtCache(tx)
	defer exec.close()
	var changes []*StateChange
	var verr error
	for i := range evs {
		ev := &evs[i]
		seq, _ := chain.Head()
		if ev.Seq != seq+1 {
			// S.13 §5.3: a seq gap is IICP-E014; halt and re-fetch.
			verr = &VerifyError{Seq: ev.Seq, Reason: fmt.Errorf("%w: %w", ErrSequence, errGap)}
			break
		}
		if verr = chain.checkLink(ev); verr == nil {
			verr = sigErrs[i]
		}
		if verr != nil {
			break
		}
		chain.advance(ev)
		ch, err := applyEvent(ctx, exec, ev)
		if err != nil {
			// Signed by the seed but not applicable: refuse and stop here.
			verr = &VerifyError{Seq: ev.Seq, Reason: fmt.Errorf("%w: %v", ErrMalformed, err)}
			break
		}
		changes = append(changes, ch)
	}
	if verr != nil {
		r.reject(source, verr)
	}
	if len(changes) == 0 {
		return 0, verr
	}
	last := evs[len(changes)-1]
	next := ChainHash(last.Sig)
	asOf := last.TsMs
	if last.Seq >= headSeq {
		asOf = r.cfg.Now().UnixMilli()
	}
	if err := r.saveProgress(ctx, tx, last.Seq, next, r.genesisFor(evs[0]), asOf); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("committing events: %w", err)
	}
	r.chain = NewChain(r.seedKey, r.seedDID, last.Seq, next)
	r.mirror(ctx, changes)
	r.appliedSeq.Store(last.Seq) // after the Sink: readers never see a seq ahead of its state
	r.metrics.appliedSq.Set(float64(last.Seq))
	r.metrics.applied.WithLabelValues(source).Add(float64(len(changes)))
	return len(changes), verr
}

// genesisFor keeps the pinned genesis, or pins it from the very first
// event of the chain (its signature's hash is the log's genesis_hash).
func (r *Replica) genesisFor(first Event) string {
	if (r.genesis == "" || r.genesis == GenesisRoot) && first.Seq == 1 {
		r.genesis = ChainHash(first.Sig)
	}
	if r.genesis == "" {
		return GenesisRoot
	}
	return r.genesis
}

// confirmHead records that the seed had nothing newer than our head.
func (r *Replica) confirmHead(ctx context.Context) {
	ms := r.cfg.Now().UnixMilli()
	r.lastConfirmed.Store(ms)
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if setMeta(ctx, tx, metaLastConfirmed, strconv.FormatInt(ms, 10)) == nil {
		_ = tx.Commit()
	}
}

// mirror hands verified changes to the Sink, as one batch when it can.
func (r *Replica) mirror(ctx context.Context, chs []*StateChange) {
	if r.cfg.Sink == nil || len(chs) == 0 {
		return
	}
	if bs, ok := r.cfg.Sink.(BatchSink); ok {
		if err := bs.ApplyStates(ctx, chs); err != nil {
			r.log.Error("mirroring changes to sink", "from_seq", chs[0].Seq, "changes", len(chs), "error", err)
		}
		return
	}
	for _, ch := range chs {
		if err := r.cfg.Sink.ApplyState(ctx, ch); err != nil {
			r.log.Error("mirroring change to sink", "seq", ch.Seq, "type", string(ch.Type), "error", err)
		}
	}
}

// mirrorSnapshot replays a freshly applied snapshot into the Sink as
// REGISTER changes, plus DEREGISTER for nodes the snapshot no longer has,
// then hands it the snapshot's ephemeral state.
func (r *Replica) mirrorSnapshot(ctx context.Context, snap *Snapshot, old map[string]struct{}) {
	if r.cfg.Sink == nil {
		return
	}
	chs := make([]*StateChange, 0, len(snap.Nodes)+len(old))
	live := make([]LiveNode, 0, len(snap.Nodes))
	for i := range snap.Nodes {
		n := &snap.Nodes[i]
		var p RegisterPayload
		if json.Unmarshal(n.Registration, &p) != nil {
			continue
		}
		delete(old, n.NodeID)
		chs = append(chs, &StateChange{Type: EventRegister, Seq: n.RegisteredSeq, TsMs: n.RegisteredTsMs, NodeID: n.NodeID, Register: &p})
		if l := liveOfSnapshot(n); l.LastSeenMs > 0 {
			live = append(live, l)
		}
	}
	for id := range old {
		chs = append(chs, &StateChange{Type: EventDeregister, Seq: snap.SnapshotSeq, TsMs: snap.SnapshotTsMs, NodeID: id})
	}
	r.mirror(ctx, chs)
	r.mirrorLive(ctx, live)
}

// mirrorLive hands ephemeral state to a LiveSink.
func (r *Replica) mirrorLive(ctx context.Context, live []LiveNode) {
	if ls, ok := r.cfg.Sink.(LiveSink); ok && len(live) > 0 {
		ls.ApplyLive(ctx, live)
	}
}

func parseRFC3339(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
