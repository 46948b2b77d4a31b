package directory

import (
	"slices"
	"sync"
	"sync/atomic"
)

// entry is one node in memory: its immutable record, its atomically
// replaced heartbeat state and its credential.
type entry struct {
	rec   *NodeRecord
	state atomic.Pointer[nodeState]
	cred  Credential
	// modalities is the union of input modalities per intent, precomputed
	// so discover's ?modality= filter does not walk capabilities.
	modalities intentModalities
	// ranks are the intent rankings the node sits in (set before the
	// entry is published, then read-only).
	ranks []*ranking
	// modBuf and rankBuf back modalities and ranks for a node of one
	// intent (most nodes): two heap objects fewer per node to allocate
	// and for the GC to mark.
	modBuf  [1]intentModality
	rankBuf [1]*ranking
}

// index is the in-memory view discover, heartbeat and auth read. It is kept
// consistent with SQLite by store.apply (the only writer of records) and is
// rebuilt from the database at start.
type index struct {
	mu       sync.RWMutex
	byID     map[string]*entry
	byIntent map[string]map[string]*entry
	// rank holds each intent's sorted candidate list (rank.go); it has the
	// same members as byIntent.
	rank map[string]*ranking
	// policy files ranking items (probation class); set before load.
	policy *rankPolicy
	// strs shares the records' low-cardinality strings (intern.go).
	strs    *strTable
	byToken map[string]string // credential index -> node id
	// byPrefix maps a public id prefix to its node id when one node has
	// it (almost always); prefixShared holds the prefixes several share.
	// No slice per node: at 100k nodes that was 100k small objects.
	byPrefix     map[string]string
	prefixShared map[string][]string
	// verified holds credential indexes whose bcrypt check already passed
	// (or that we issued ourselves), so heartbeats skip bcrypt.
	verified map[string]struct{}
}

// prefixLen is the public node-id prefix length (view=public, registry).
const prefixLen = 8

func newIndex() *index {
	return &index{
		byID:         make(map[string]*entry),
		byIntent:     make(map[string]map[string]*entry),
		rank:         make(map[string]*ranking),
		byToken:      make(map[string]string),
		byPrefix:     make(map[string]string),
		prefixShared: make(map[string][]string),
		verified:     make(map[string]struct{}),
		strs:         newStrTable(),
	}
}

func idPrefix(id string) string {
	if len(id) < prefixLen {
		return id
	}
	return id[:prefixLen]
}

// put inserts or replaces a node. st is kept from the old entry when nil.
// A credential with an empty Index keeps the old credential.
func (ix *index) put(rec *NodeRecord, st *nodeState, cred Credential, verified bool) {
	e := &entry{rec: rec, cred: cred}
	e.modalities = modalitiesByIntent(rec, e.modBuf[:0])
	e.ranks = e.rankBuf[:0]
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old, ok := ix.byID[rec.NodeID]; ok {
		if st == nil {
			st = old.state.Load()
		}
		if cred.Index == "" {
			e.cred = old.cred
		}
		ix.unlinkLocked(old, e.cred.Index != old.cred.Index, e.modalities)
	}
	e.state.Store(st)
	ix.byID[rec.NodeID] = e
	for _, im := range e.modalities {
		intent := im.intent
		m := ix.byIntent[intent]
		if m == nil {
			m = make(map[string]*entry)
			ix.byIntent[intent] = m
		}
		m[rec.NodeID] = e
		r := ix.rank[intent]
		if r == nil {
			r = newRanking()
			ix.rank[intent] = r
		}
		e.ranks = append(e.ranks, r)
	}
	for _, r := range e.ranks {
		r.put(e, ix.policy) // replaces the old entry's item where it had one
	}
	ix.addPrefixLocked(rec.NodeID)
	if e.cred.Index != "" {
		ix.byToken[e.cred.Index] = rec.NodeID
		if verified {
			ix.verified[e.cred.Index] = struct{}{}
		}
	}
}

// unlinkLocked removes old from the secondary maps; dropToken also revokes
// its credential (rotation: the old token gets 401 at once). Rankings of
// intents in keep are left for the replacing entry's put, so a
// re-registration never makes the node vanish from discover in between.
func (ix *index) unlinkLocked(old *entry, dropToken bool, keep intentModalities) {
	for _, im := range old.modalities {
		intent := im.intent
		if m := ix.byIntent[intent]; m != nil {
			delete(m, old.rec.NodeID)
			if len(m) == 0 {
				delete(ix.byIntent, intent)
			}
		}
		if keep.has(intent) {
			continue
		}
		if r := ix.rank[intent]; r != nil && r.remove(old.rec.NodeID) {
			delete(ix.rank, intent)
		}
	}
	ix.dropPrefixLocked(old.rec.NodeID)
	if dropToken && old.cred.Index != "" {
		delete(ix.byToken, old.cred.Index)
		delete(ix.verified, old.cred.Index)
	}
}

func (ix *index) addPrefixLocked(id string) {
	p := idPrefix(id)
	if ids, ok := ix.prefixShared[p]; ok {
		if !contains(ids, id) {
			ix.prefixShared[p] = append(ids, id)
		}
	} else if cur, ok := ix.byPrefix[p]; ok && cur != id {
		delete(ix.byPrefix, p)
		ix.prefixShared[p] = []string{cur, id}
	} else {
		ix.byPrefix[p] = id
	}
}

func (ix *index) dropPrefixLocked(id string) {
	p := idPrefix(id)
	ids, ok := ix.prefixShared[p]
	if !ok {
		if ix.byPrefix[p] == id {
			delete(ix.byPrefix, p)
		}
		return
	}
	switch ids = slices.DeleteFunc(ids, func(x string) bool { return x == id }); len(ids) {
	case 1:
		delete(ix.prefixShared, p)
		ix.byPrefix[p] = ids[0]
	case 0:
		delete(ix.prefixShared, p)
	default:
		ix.prefixShared[p] = ids
	}
}

func (ix *index) remove(id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old, ok := ix.byID[id]; ok {
		ix.unlinkLocked(old, true, nil)
		delete(ix.byID, id)
	}
}

func (ix *index) get(id string) *entry {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.byID[id]
}

// byPrefixUnique resolves an 8-char prefix to its node when exactly one matches.
func (ix *index) byPrefixUnique(p string) *entry {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if id, ok := ix.byPrefix[p]; ok {
		return ix.byID[id]
	}
	return nil
}

// tokenOwner returns the node a credential index belongs to and whether the
// index is already verified.
func (ix *index) tokenOwner(credIndex []byte) (*entry, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	id, ok := ix.byToken[string(credIndex)] // no allocation: a map index
	if !ok {
		return nil, false
	}
	_, v := ix.verified[string(credIndex)]
	return ix.byID[id], v
}

// markVerified caches a passed bcrypt check, unless the credential was
// rotated away meanwhile.
func (ix *index) markVerified(credIndex string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, ok := ix.byToken[credIndex]; ok {
		ix.verified[credIndex] = struct{}{}
	}
}

// refreshRanks re-files e in every intent it serves; called after a
// successful state swap.
func (ix *index) refreshRanks(e *entry) {
	for _, r := range e.ranks {
		r.refresh(e, ix.policy)
	}
}

// ranking returns intent's ranking (nil when no node serves it).
func (ix *index) ranking(intent string) *ranking {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.rank[intent]
}

// forAll calls fn for every node under the read lock.
// forAll calls fn for every entry of a snapshot taken under the read lock;
// fn runs without the lock. A walk over 100k entries (dormancy, probes,
// operator counts) used to hold the read lock throughout, and a REGISTER
// waiting for the write lock then stalled every heartbeat and discover
// behind it (RWMutex admits no new reader while a writer waits).
func (ix *index) forAll(fn func(*entry)) {
	ix.mu.RLock()
	all := make([]*entry, 0, len(ix.byID))
	for _, e := range ix.byID {
		all = append(all, e)
	}
	ix.mu.RUnlock()
	for _, e := range all {
		fn(e)
	}
}

func (ix *index) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byID)
}

// intentModalities is the union of input modalities per intent of one
// node, in capability order: a small slice rather than a map, since a node
// serves a handful of intents and 100k nodes each kept a map.
type intentModalities []intentModality

type intentModality struct {
	intent string
	mods   []string
}

// get returns the modalities of intent (nil when the node does not serve it).
func (im intentModalities) get(intent string) []string {
	for i := range im {
		if im[i].intent == intent {
			return im[i].mods
		}
	}
	return nil
}

func (im intentModalities) has(intent string) bool {
	for i := range im {
		if im[i].intent == intent {
			return true
		}
	}
	return false
}

// textOnly is the shared default modality list (iicp-dir.md §3.1); it is
// never appended to in place.
var textOnly = []string{"text"}

// modalitiesByIntent builds the list in out (appended to: a caller's
// buffer serves a node of few intents without an allocation).
func modalitiesByIntent(rec *NodeRecord, out intentModalities) intentModalities {
	for _, c := range rec.Capabilities {
		mods := c.InputModalities
		if len(mods) == 0 {
			mods = textOnly
		}
		i := slices.IndexFunc(out, func(x intentModality) bool { return x.intent == c.Intent })
		if i < 0 {
			out = append(out, intentModality{intent: c.Intent})
			i = len(out) - 1
		}
		if out[i].mods == nil && len(c.InputModalities) == 0 {
			out[i].mods = textOnly
			continue
		}
		for _, m := range mods {
			if !contains(out[i].mods, m) {
				// Clip so an append never writes into a shared backing array.
				out[i].mods = append(slices.Clip(out[i].mods), m)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
