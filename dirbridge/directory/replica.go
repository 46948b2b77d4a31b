package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Federation support (iicp-federated-directory.md, S.13). A seed directory
// reads its nodes' ephemeral state for snapshots and liveness digests; a
// replica directory applies the seed's verified changes in bulk and takes
// ephemeral state from the seed instead of from heartbeats (ADR-033: the
// federated log carries no heartbeats). The federation package does the
// verification; this file only offers the store operations it needs.

// NodeLive is a node's ephemeral, heartbeat-driven state.
type NodeLive struct {
	NodeID   string
	LastSeen time.Time
	// Load is meaningful only when LoadReported; otherwise discover derives
	// load from ActiveJobs/max_concurrent.
	Load           float64
	LoadReported   bool
	ActiveJobs     int
	Available      bool // the node's own availability flag, not the liveness verdict
	Reputation     float64
	ReputationTier string
	CompletedTasks int64
	SLAP95Ms       *int64
}

func liveOf(id string, st *nodeState) NodeLive {
	return NodeLive{NodeID: id, LastSeen: st.LastSeen, Load: st.Load, LoadReported: st.LoadReported,
		ActiveJobs: st.ActiveJobs, Available: st.Available, Reputation: st.Reputation,
		ReputationTier: reputationTier(st.Reputation), CompletedTasks: st.CompletedTasks, SLAP95Ms: st.SLAP95Ms}
}

// LiveState returns one node's ephemeral state (a seed's snapshot source).
// Available is the node's flag combined with the liveness window.
func (s *Server) LiveState(id string) (NodeLive, bool) {
	e := s.store.idx.get(id)
	if e == nil {
		return NodeLive{}, false
	}
	st := e.state.Load()
	l := liveOf(id, st)
	l.Available = st.Available && !st.Reach.unreachable() && s.live(st, s.now())
	return l, true
}

// LiveSince returns the ephemeral state of every node heard from after t
// (a seed's liveness digest: the nodes whose heartbeats a replica lacks).
func (s *Server) LiveSince(t time.Time) []NodeLive {
	// Sized for a steady fleet's digest (at a 30 s heartbeat a 10 s digest
	// holds about a third of the nodes): growing from nil copied ~2x its
	// final size every digest.
	out := make([]NodeLive, 0, s.store.idx.count()/2)
	s.store.idx.forAll(func(e *entry) {
		if st := e.state.Load(); st.LastSeen.After(t) {
			l := liveOf(e.rec.NodeID, st)
			l.Available = l.Available && !st.Reach.unreachable() // replicas do not probe: they follow ours
			out = append(out, l)
		}
	})
	return out
}

// NodeRecords returns every registered node's record (reconciliation of a
// seed's log or a replica's store against the other side). Records are
// immutable: callers must not modify them.
func (s *Server) NodeRecords() []*NodeRecord {
	out := make([]*NodeRecord, 0, s.store.idx.count())
	s.store.idx.forAll(func(e *entry) { out = append(out, e.rec) })
	return out
}

// ApplyLive sets replicated ephemeral state on known nodes. Newer
// supersedes older: a value whose LastSeen is not after the stored one is
// ignored, so digests may arrive late, twice or out of order. Unknown nodes
// are skipped (their REGISTER has not been applied yet). It returns how
// many nodes changed.
func (s *Server) ApplyLive(ls []NodeLive) int {
	n := 0
	for i := range ls {
		l := &ls[i]
		e := s.store.idx.get(l.NodeID)
		if e == nil {
			continue
		}
		for range maxStateCAS {
			old := e.state.Load()
			if !l.LastSeen.After(old.LastSeen) {
				break
			}
			next := *old
			next.LastSeen, next.Available, next.ActiveJobs = l.LastSeen, l.Available, l.ActiveJobs
			next.Load, next.LoadReported = l.Load, l.LoadReported
			next.Reputation, next.CompletedTasks, next.SLAP95Ms = l.Reputation, l.CompletedTasks, l.SLAP95Ms
			next.DormantSince = nil
			if e.state.CompareAndSwap(old, &next) {
				s.stateChanged(e)
				n++
				break
			}
		}
	}
	return n
}

// stateChanged publishes a swapped heartbeat state, as a heartbeat does:
// re-file the node in its rankings, queue the write-behind.
func (s *Server) stateChanged(e *entry) {
	s.store.idx.refreshRanks(e)
	s.store.markDirty(e.rec.NodeID, nil)
}

// ApplyReplicated applies changes taken from the seed's verified log in one
// transaction (a replica's bulk path: a page of the event tail, or a
// snapshot). A REGISTER starts the node's state at ev.At, keeping task
// counters and reputation it already had; later digests replace it.
// Credentials never travel (Credential must be nil).
func (s *Server) ApplyReplicated(ctx context.Context, evs []ChangeEvent) error {
	if len(evs) == 0 {
		return nil
	}
	st := s.store
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	states, err := st.writeReplicated(ctx, tx, evs)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing replicated changes: %w", err)
	}
	for i := range evs {
		st.published(evs[i], states[i], Credential{}, false)
	}
	return nil
}

// writeReplicated writes evs in tx and returns the state each REGISTER
// starts with (nil for a DEREGISTER).
func (st *store) writeReplicated(ctx context.Context, tx *sql.Tx, evs []ChangeEvent) ([]*nodeState, error) {
	// Prepared once per batch: a page of 1000 changes would otherwise parse
	// the same SQL 1000 times. A replicated change keeps any credential row.
	ins, err := tx.PrepareContext(ctx, upsertNodeKeepCredential)
	if err != nil {
		return nil, fmt.Errorf("preparing replicated upsert: %w", err)
	}
	defer ins.Close()
	del, err := tx.PrepareContext(ctx, `DELETE FROM nodes WHERE node_id = ?`)
	if err != nil {
		return nil, fmt.Errorf("preparing replicated delete: %w", err)
	}
	defer del.Close()
	states := make([]*nodeState, len(evs))
	for i := range evs {
		ev := &evs[i]
		if ev.Credential != nil {
			return nil, errors.New("directory: a replicated change carries no credential")
		}
		switch ev.Kind {
		case ChangeRegister:
			if ev.Record == nil || ev.Record.NodeID != ev.NodeID {
				return nil, errors.New("directory: register change without a matching record")
			}
			states[i] = st.replicatedState(ev)
			recRaw, stRaw, err := encodeNode(ev.Record, states[i])
			if err != nil {
				return nil, err
			}
			if _, err := ins.ExecContext(ctx, ev.NodeID, recRaw, stRaw); err != nil {
				return nil, fmt.Errorf("writing node: %w", err)
			}
		case ChangeDeregister:
			if _, err := del.ExecContext(ctx, ev.NodeID); err != nil {
				return nil, fmt.Errorf("deleting node: %w", err)
			}
		default:
			return nil, fmt.Errorf("applying change: unknown kind %q", ev.Kind)
		}
	}
	return states, nil
}

// replicatedState is the state a replicated REGISTER starts the node with:
// seen at ev.At, keeping the counters and reputation it already had, and
// the newer liveness when a digest already reported a later heartbeat.
func (st *store) replicatedState(ev *ChangeEvent) *nodeState {
	ns := &nodeState{LastSeen: ev.At, Available: true, Reputation: defaultReputation}
	if old := st.idx.get(ev.NodeID); old != nil {
		prev := old.state.Load()
		ns.CompletedTasks, ns.FailedTasks, ns.Reputation = prev.CompletedTasks, prev.FailedTasks, prev.Reputation
		if prev.LastSeen.After(ns.LastSeen) {
			ns.LastSeen, ns.Load, ns.LoadReported, ns.ActiveJobs = prev.LastSeen, prev.Load, prev.LoadReported, prev.ActiveJobs
		}
	}
	return ns
}

// WithHandlerWrap wraps the route table: the listener and Handler serve
// wrap(routes). Federation mounts the seed's endpoints or the replica's
// write gate and response signing this way. Several wraps compose, the
// first given outermost.
func WithHandlerWrap(wrap func(http.Handler) http.Handler) Option {
	return func(s *Server) error {
		if wrap == nil {
			return errors.New("directory: nil handler wrap")
		}
		s.wraps = append(s.wraps, wrap)
		return nil
	}
}

// WithLivenessClock sets the instant against which liveness (last_seen
// within StaleAfter) is judged. A replica judges it at the seed's time of
// its newest liveness digest, so nodes neither expire early because a
// digest is in flight nor stay live on the replica's own clock alone.
func WithLivenessClock(now func() time.Time) Option {
	return func(s *Server) error {
		if now == nil {
			return errors.New("directory: nil liveness clock")
		}
		s.liveNow = now
		return nil
	}
}

// wrapHandler applies the handler wraps, the first given outermost.
func (s *Server) wrapHandler(h http.Handler) http.Handler {
	for i := len(s.wraps) - 1; i >= 0; i-- {
		h = s.wraps[i](h)
	}
	return h
}
