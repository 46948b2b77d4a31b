package directory

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// ranking is one intent's candidate lists, kept sorted by each node's score
// upper bound (the score with the query- and time-dependent availability
// and region terms at 1; floating-point addition and rounding are
// monotone, so no query can score a node above it) and updated incrementally: registration and
// deregistration insert or remove one item, a heartbeat moves one item.
// Discover walks a list from the top, computes the exact score of each
// eligible node and stops as soon as the next bound cannot beat the k-th
// result, so a query touches the nodes near the top instead of the whole
// intent, and the answer is exactly what scoring every node would give.
//
// Graduated nodes (out of probation, probation.go) and probationary nodes
// sit in separate lists, so qos=interactive can pick from each without
// walking the other. Nodes no query can return — unavailable, dormant
// (marked by the maintenance loop once stale) or unreachable by the active
// probe — sit in a third list no walk reads: a directory where half the
// registered nodes are offline answers as fast as one where all are up. A node graduates by age alone, without an event, so
// the ranking remembers the earliest pending graduation and moves due
// items before the next query reads it.
type ranking struct {
	mu    sync.RWMutex
	lists [3][]*rankItem // [classGraduated], [classProbation], [classInactive]; each sorted by rankLess
	byID  map[string]*rankItem
	// nextGrad is the earliest graduatesAt in the probation list (unix ns,
	// math.MaxInt64 when none); a lower bound, never late.
	nextGrad atomic.Int64
}

const (
	classGraduated = 0
	classProbation = 1
	classInactive  = 2
)

// inactive reports whether no discover can return a node at st, whatever
// the query (the first row of eligible): such items are not walked.
func inactive(st *nodeState) bool {
	return !st.Available || st.DormantSince != nil || st.Reach.unreachable()
}

// rankItem is one node at one heartbeat state. It is immutable apart from
// its encoding cache: a state change replaces the item.
type rankItem struct {
	e     *entry
	st    *nodeState
	bound float64
	class int
	// graduatesAt is when the node leaves probation at this state (zero:
	// not at this state).
	graduatesAt time.Time
	// in holds the query-independent score factors (availability 1:
	// windows make it depend on the time, so score recomputes it).
	in      wire.ScoreInput
	windows bool
	// network groups nodes by observed source network (/24, /48) for the
	// per-network cap on probationary nodes.
	network string
	// region, lastSeen (unix ns) and rep copy what every walk reads of the
	// record and the state into the item itself (regions.go).
	region   itemRegion
	lastSeen int64
	rep      float64
	idKey    uint64 // idKey(node_id): list order and tie-breaks without the record
	// frags caches the node's JSON per view and region-match class; a node
	// object is a pure function of (rec, st, intent, score) and the
	// operator display names, so it stays valid for the item's life and is
	// checked against the score and the display-name generation.
	frags [2][3]atomic.Pointer[fragment]
}

// fragment is one pre-encoded discover node object.
type fragment struct {
	score float64
	gen   uint64 // operatorBook generation (display names)
	until int64  // unix seconds the operator block stays right (delegation not_after)
	b     []byte
}

// rankPolicy is what the index needs from the server to file an item.
type rankPolicy struct {
	now func() time.Time
	// graduatesAt returns when a node at this state leaves probation
	// (zero: never at this state).
	graduatesAt func(*NodeRecord, *nodeState) time.Time
	// regions interns the items' regions (nil: compared by string).
	regions *regionTable
}

func newRanking() *ranking {
	r := &ranking{byID: make(map[string]*rankItem)}
	r.nextGrad.Store(math.MaxInt64)
	return r
}

// newRankItem files e at state st; prev (nil: none) is the node's item at
// an earlier state, whose network key is reused while the address holds.
func newRankItem(e *entry, st *nodeState, p *rankPolicy, prev *rankItem) *rankItem {
	in := scoreInput(e.rec, st, 1)
	top := in
	top.Region = 1 // wire.Score is monotone: region 1 bounds every query
	it := &rankItem{e: e, st: st, bound: wire.RoundScore(wire.Score(top)), windows: len(e.rec.Availability) > 0,
		in: in, class: classProbation, lastSeen: st.LastSeen.UnixNano(), rep: st.Reputation, idKey: idKey(e.rec.NodeID)}
	if p != nil && p.regions != nil {
		it.region = p.regions.itemRegion(e.rec.Region)
	} else {
		it.region = itemRegion{id: regionOverflow, head: regionOverflow}
	}
	if prev != nil && prev.e.rec == e.rec && prev.st.ObservedIP == st.ObservedIP {
		it.network = prev.network
	} else {
		it.network = networkKey(e.rec, st)
	}
	if p != nil && p.graduatesAt != nil {
		it.graduatesAt = p.graduatesAt(e.rec, st)
		if !it.graduatesAt.IsZero() && !it.graduatesAt.After(p.now()) {
			it.class = classGraduated
		}
	}
	if inactive(st) {
		it.class = classInactive
	}
	return it
}

// score is the item's exact score for a query region at now; identical to
// score(rec, st, region, now) because it feeds wire.Score the same factors.
func (it *rankItem) score(rq *regionQuery, now time.Time) float64 {
	in := it.in
	if it.windows {
		in.Availability = availabilityFactor(it.e.rec.Availability, now)
	}
	in.Region = rq.match(it)
	return wire.RoundScore(wire.Score(in))
}

// rankLess is the list order: higher bound first, ties by node_id.
func rankLess(a, b *rankItem) bool {
	if a.bound != b.bound {
		return a.bound > b.bound
	}
	if a.idKey != b.idKey {
		return a.idKey < b.idKey
	}
	return a.e.rec.NodeID < b.e.rec.NodeID
}

func rankCmp(x, t *rankItem) int {
	switch {
	case rankLess(x, t):
		return -1
	case rankLess(t, x):
		return 1
	}
	return 0
}

func (r *ranking) insertLocked(it *rankItem) {
	l := &r.lists[it.class]
	i, _ := slices.BinarySearchFunc(*l, it, rankCmp)
	*l = slices.Insert(*l, i, it)
	r.byID[it.e.rec.NodeID] = it
	if it.class == classProbation && !it.graduatesAt.IsZero() {
		if ns := it.graduatesAt.UnixNano(); ns < r.nextGrad.Load() {
			r.nextGrad.Store(ns)
		}
	}
}

func (r *ranking) deleteLocked(it *rankItem) {
	l := &r.lists[it.class]
	if i, found := slices.BinarySearchFunc(*l, it, rankCmp); found {
		*l = slices.Delete(*l, i, i+1)
	}
	delete(r.byID, it.e.rec.NodeID)
}

// replaceLocked swaps old for it. Within one list only the items between
// the two positions shift.
func (r *ranking) replaceLocked(old, it *rankItem) {
	if old == nil || old.class != it.class {
		if old != nil {
			r.deleteLocked(old)
		}
		r.insertLocked(it)
		return
	}
	l := r.lists[it.class]
	from, _ := slices.BinarySearchFunc(l, old, rankCmp)
	to, _ := slices.BinarySearchFunc(l, it, rankCmp)
	if to > from { // moving down: its slot is to-1 once old is gone
		copy(l[from:to-1], l[from+1:to])
		l[to-1] = it
	} else {
		copy(l[to+1:from+1], l[to:from])
		l[to] = it
	}
	r.byID[it.e.rec.NodeID] = it
}

// put files e at its current state, replacing any item for the same node
// (registration, re-registration, index load).
func (r *ranking) put(e *entry, p *rankPolicy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[e.rec.NodeID]
	r.replaceLocked(old, newRankItem(e, e.state.Load(), p, old))
}

// refresh moves e to its current state after a heartbeat or a dormancy
// flip. It reads the state under the lock, so concurrent refreshes of one
// node converge on the newest state whatever order they run in; it does
// nothing if e was replaced by a re-registration meanwhile.
func (r *ranking) refresh(e *entry, p *rankPolicy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[e.rec.NodeID]
	if old == nil || old.e != e {
		return
	}
	if st := e.state.Load(); st != old.st {
		r.replaceLocked(old, newRankItem(e, st, p, old))
	}
}

// remove drops a node; it reports whether the ranking is now empty.
func (r *ranking) remove(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.byID[id]; old != nil {
		r.deleteLocked(old)
	}
	return len(r.byID) == 0
}

// graduate moves probationary items whose graduation time has come into
// the graduated list. Cheap when nothing is due (one atomic load).
func (r *ranking) graduate(now time.Time) {
	if now.UnixNano() < r.nextGrad.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := int64(math.MaxInt64)
	var due []*rankItem
	for _, it := range r.lists[classProbation] {
		switch {
		case it.graduatesAt.IsZero():
		case !it.graduatesAt.After(now):
			due = append(due, it)
		default:
			next = min(next, it.graduatesAt.UnixNano())
		}
	}
	for _, it := range due {
		r.deleteLocked(it)
		r.insertLocked(&rankItem{e: it.e, st: it.st, bound: it.bound, class: classGraduated, graduatesAt: it.graduatesAt,
			in: it.in, windows: it.windows, network: it.network, region: it.region, lastSeen: it.lastSeen, rep: it.rep, idKey: it.idKey})
	}
	r.nextGrad.Store(next)
}

// topSpec is one walk: which lists, how many, which nodes.
type topSpec struct {
	k     int
	lists []int
	// eval returns the exact score of an eligible item.
	eval func(*rankItem) (float64, bool)
	// perNetwork > 0 keeps at most that many items per network (the best
	// ones); 0 or less: no cap.
	perNetwork int
}

// top returns the best k items that eval accepts, ordered by better. The
// walk stops at the first item whose bound cannot beat the k-th result: no
// later item can enter (nor displace a same-network item, which would need
// a better score still).
func (r *ranking) top(sp topSpec) []scored {
	out := make([]scored, 0, sp.k)
	var seen map[string][]scored // network -> its best accepted items
	if sp.perNetwork > 0 {
		seen = make(map[string][]scored)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var pos [3]int
	for {
		it := r.nextLocked(sp.lists, &pos)
		if it == nil || (len(out) == sp.k && !better(scored{e: it.e, score: it.bound, idKey: it.idKey}, out[sp.k-1])) {
			// Items come in (bound desc, node_id asc) order, the order
			// better imposes on scores; a score never exceeds its bound.
			// So if even this bound cannot beat the k-th result, no later
			// item can (ties on score go to the lower node_id).
			break
		}
		sc, ok := sp.eval(it)
		if !ok {
			continue
		}
		c := scored{e: it.e, st: it.st, score: sc, item: it, idKey: it.idKey}
		if seen != nil {
			acc := seen[it.network]
			if len(acc) == sp.perNetwork {
				worst := acc[len(acc)-1]
				if !better(c, worst) {
					continue
				}
				out = slices.DeleteFunc(out, func(o scored) bool { return o.item == worst.item })
				acc = acc[:len(acc)-1]
			}
			seen[it.network] = insertTop(acc, c, sp.perNetwork)
		}
		out = insertTop(out, c, sp.k)
	}
	return out
}

// nextLocked merges the chosen lists in rankLess order.
func (r *ranking) nextLocked(lists []int, pos *[3]int) *rankItem {
	var best *rankItem
	bi := -1
	for _, l := range lists {
		if pos[l] < len(r.lists[l]) {
			if it := r.lists[l][pos[l]]; best == nil || rankLess(it, best) {
				best, bi = it, l
			}
		}
	}
	if bi >= 0 {
		pos[bi]++
	}
	return best
}

// insertTop inserts c into the sorted top list of at most k entries.
func insertTop(out []scored, c scored, k int) []scored {
	if len(out) == k && !better(c, out[k-1]) {
		return out
	}
	i := len(out)
	if i < k {
		out = append(out, c)
	} else {
		i = k - 1
	}
	for ; i > 0 && better(c, out[i-1]); i-- {
		out[i] = out[i-1]
	}
	out[i] = c
	return out
}

// regionClass indexes the fragment cache by region_match value.
func regionClass(want, have string) int {
	switch m := wire.RegionMatch(want, have); {
	case m == 1:
		return 0
	case m > 0:
		return 1
	}
	return 2
}

// fragmentFor returns the cached encoding of the item for the view,
// building it with enc on a miss.
func (it *rankItem) fragmentFor(view int, region string, sc float64, gen uint64, now, until int64, enc func() []byte) []byte {
	slot := &it.frags[view][regionClass(region, it.e.rec.Region)]
	if f := slot.Load(); f != nil && f.score == sc && f.gen == gen && now < f.until {
		return f.b
	}
	b := enc()
	slot.Store(&fragment{score: sc, gen: gen, until: until, b: b})
	return b
}
