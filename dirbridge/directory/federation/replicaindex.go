package federation

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// nodeView is a replica's in-memory view of one node: the signed
// registration plus the ephemeral state last seen in a snapshot.
type nodeView struct {
	reg        RegisterPayload
	lastSeen   time.Time
	available  bool
	load       *float64
	reputation *float64
}

// replicaIndex serves discover from memory; every write goes through the
// replica's verified apply path first.
type replicaIndex struct {
	mu    sync.RWMutex
	nodes map[string]*nodeView
}

func newReplicaIndex() *replicaIndex { return &replicaIndex{nodes: map[string]*nodeView{}} }

// load rebuilds the index from the replica database (restart).
func (ix *replicaIndex) load(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT record, ts_ms, reputation, live FROM fed_nodes`)
	if err != nil {
		return fmt.Errorf("loading nodes: %w", err)
	}
	defer rows.Close()
	nodes := map[string]*nodeView{}
	for rows.Next() {
		var rec, live []byte
		var ts int64
		var rep sql.NullFloat64
		if err := rows.Scan(&rec, &ts, &rep, &live); err != nil {
			return fmt.Errorf("scanning node: %w", err)
		}
		v := &nodeView{lastSeen: time.UnixMilli(ts), available: true}
		if err := json.Unmarshal(rec, &v.reg); err != nil {
			return fmt.Errorf("decoding node: %w", err)
		}
		if rep.Valid {
			v.reputation = &rep.Float64
		}
		var ls LiveNode // the snapshot's ephemeral state (replicalive.go)
		if len(live) > 0 && json.Unmarshal(live, &ls) == nil {
			v.setLive(&ls)
		}
		nodes[v.reg.NodeID] = v
	}
	if err := rows.Err(); err != nil {
		return err
	}
	ix.mu.Lock()
	ix.nodes = nodes
	ix.mu.Unlock()
	return nil
}

// apply mirrors one verified state change.
func (ix *replicaIndex) apply(ch *StateChange) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	switch ch.Type {
	case EventRegister:
		old := ix.nodes[ch.NodeID]
		v := &nodeView{reg: *ch.Register, lastSeen: time.UnixMilli(ch.TsMs), available: true}
		if old != nil {
			v.reputation = old.reputation
			if old.lastSeen.After(v.lastSeen) { // a digest newer than the event
				v.lastSeen, v.available, v.load = old.lastSeen, old.available, old.load
			}
		}
		ix.nodes[ch.NodeID] = v
	case EventDeregister:
		delete(ix.nodes, ch.NodeID)
	case EventReputationDecay:
		if v := ix.nodes[ch.NodeID]; v != nil {
			nv := *v
			nv.reputation = ch.Reputation
			ix.nodes[ch.NodeID] = &nv
		}
	}
}

// applyLive takes ephemeral state from a verified digest or snapshot for
// the nodes it knows; newer last_seen supersedes older.
func (ix *replicaIndex) applyLive(nodes []LiveNode) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for i := range nodes {
		if v := ix.nodes[nodes[i].NodeID]; v != nil {
			nv := *v
			if nv.setLive(&nodes[i]) {
				ix.nodes[nodes[i].NodeID] = &nv
			}
		}
	}
}

// setLive applies l when it is newer than what v holds.
func (v *nodeView) setLive(l *LiveNode) bool {
	if l.LastSeenMs <= v.lastSeen.UnixMilli() {
		return false
	}
	v.lastSeen, v.available, v.load = time.UnixMilli(l.LastSeenMs), l.Available, l.Load
	if l.Reputation != nil {
		v.reputation = l.Reputation
	}
	return true
}

// discoverQuery is a parsed GET /v1/discover.
type discoverQuery struct {
	intent, region, model string
	limit                 int
}

// minDiscScore: nodes scoring below it are not listed (iicp-semantics.md §3.3).
const minDiscScore = wire.MinScore

// query returns live nodes matching q, best first. live decides the
// liveness window (the replica has no heartbeats of its own).
func (ix *replicaIndex) query(q discoverQuery, live func(*nodeView) bool) []wire.NodeSummary {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := []wire.NodeSummary{}
	for _, v := range ix.nodes {
		if !live(v) || !v.matches(q) {
			continue
		}
		s := v.score(q.region)
		if s < minDiscScore {
			continue
		}
		out = append(out, v.summary(s))
	}
	slices.SortFunc(out, func(a, b wire.NodeSummary) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
	if len(out) > q.limit {
		out = out[:q.limit]
	}
	return out
}

// node returns one node's summary.
func (ix *replicaIndex) node(id string) (wire.NodeSummary, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	v, ok := ix.nodes[id]
	if !ok {
		return wire.NodeSummary{}, false
	}
	return v.summary(v.score("")), true
}

func (ix *replicaIndex) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.nodes)
}

func (v *nodeView) matches(q discoverQuery) bool {
	if !v.available {
		return false
	}
	if q.intent == "" {
		return true
	}
	for _, c := range v.reg.Capabilities {
		if c.Intent != q.intent {
			continue
		}
		if q.model == "" || slices.Contains(c.Models, q.model) {
			return true
		}
	}
	return false
}

// score is the node's §3.1 score (wire.Score) with the factors the seed's
// directory uses; each directory scores independently (S.13 §1).
func (v *nodeView) score(region string) float64 {
	in := wire.ScoreInput{Availability: 1, Region: wire.RegionMatch(region, v.reg.Region), Reputation: 0.5}
	if v.load != nil {
		in.Load = *v.load
	}
	if v.reg.Limits != nil {
		in.Capacity = wire.CapacityRatio(v.reg.Limits.MaxConcurrent)
	}
	if v.reputation != nil {
		in.Reputation = *v.reputation
	}
	return wire.RoundScore(wire.Score(in))
}

func (v *nodeView) summary(score float64) wire.NodeSummary {
	ns := wire.NodeSummary{NodeID: v.reg.NodeID, Endpoint: v.reg.Endpoint, TransportEndpoint: v.reg.TransportEndpoint,
		Score: score, Available: v.available, Region: v.reg.Region, Capabilities: v.reg.Capabilities,
		Load: v.load, Extensions: v.reg.Extensions}
	if len(v.reg.CXPublicKey) > 0 {
		var k wire.CXPublicKey
		if json.Unmarshal(v.reg.CXPublicKey, &k) == nil {
			ns.CXPublicKey, ns.KeyReady = &k, true
		}
	}
	return ns
}
