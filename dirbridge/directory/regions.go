package directory

import (
	"math"
	"sync"

	"github.com/meshnode/meshnode/wire"
)

// regionTable interns region keys (wire.RegionKey of a region and of its
// leading label) to small ids, so a discover compares each candidate's
// region by one integer held in its ranking item instead of chasing the
// node record's string: at 100k nodes the walk's cost is cache misses, not
// arithmetic. Distinct keys are capped (regions are free text in
// REGISTER); a node whose region did not fit keeps regionOverflow and is
// compared by its string, so answers never depend on the cap.
type regionTable struct {
	mu  sync.RWMutex
	ids map[string]uint32
}

const (
	// maxRegionKeys bounds the table against registrations that invent
	// a region each.
	maxRegionKeys = 4096
	// regionOverflow marks a region compared by string.
	regionOverflow = math.MaxUint32
)

func newRegionTable() *regionTable {
	return &regionTable{ids: map[string]uint32{"": 0}}
}

// intern returns key's id, adding it while there is room.
func (t *regionTable) intern(key string) uint32 {
	t.mu.RLock()
	id, ok := t.ids[key]
	t.mu.RUnlock()
	if ok {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[key]; ok {
		return id
	}
	if len(t.ids) >= maxRegionKeys {
		return regionOverflow
	}
	id = uint32(len(t.ids))
	t.ids[key] = id
	return id
}

func (t *regionTable) lookup(key string) (uint32, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	id, ok := t.ids[key]
	return id, ok
}

// itemRegion is a ranking item's interned region and leading label.
type itemRegion struct{ id, head uint32 }

func (t *regionTable) itemRegion(region string) itemRegion {
	return itemRegion{id: t.intern(wire.RegionKey(region)), head: t.intern(wire.RegionKey(wire.RegionHead(region)))}
}

// regionQuery is a discover's region preference, resolved once per query.
type regionQuery struct {
	want         string
	any          bool // no preference: every region matches fully
	id, head     uint32
	idOK, headOK bool // the key is in the table (else no interned node has it)
}

func (t *regionTable) query(want string) regionQuery {
	q := regionQuery{want: want, any: want == ""}
	if q.any {
		return q
	}
	q.id, q.idOK = t.lookup(wire.RegionKey(want))
	if h := wire.RegionHead(want); h != "" {
		q.head, q.headOK = t.lookup(wire.RegionKey(h))
	}
	return q
}

// match is wire.RegionMatch(q.want, region of it), from the interned ids.
func (q *regionQuery) match(it *rankItem) float64 {
	switch {
	case q.any:
		return 1
	case it.region.id == regionOverflow || it.region.head == regionOverflow:
		return wire.RegionMatch(q.want, it.e.rec.Region)
	case q.idOK && q.id == it.region.id:
		return 1
	case q.headOK && q.head == it.region.head:
		return 0.5
	}
	return 0
}
