package node

import (
	"crypto/sha256"
	"sync"
	"time"
)

// idempotency remembers task_ids (TASK-2, iicp-core.md §3.1: "Adapter MUST
// check task_id uniqueness"). Memory is bounded by a TTL and a cap; both
// evictions are O(1) amortised because every entry has the same TTL, so
// insertion order is expiry order and a FIFO ring is enough.
//
// A reservation can be cancelled (the CALL was refused before it ran, e.g.
// capacity_exceeded), so the caller may retry that task_id. Cancelled
// entries stay in the ring as tombstones and are skipped by generation.
//
// Neither the map nor the ring holds a pointer (keys are idemKey values,
// times are offsets from the first reservation): up to cap entries stay
// live for the TTL, and pointer-free memory is never scanned by the
// garbage collector, which would otherwise walk every remembered task_id
// on every cycle (issue 11 item 9).
type idempotency struct {
	mu   sync.Mutex
	ttl  time.Duration
	cap  int
	gen  uint64
	base time.Time          // the first reservation's time; entry times are offsets from it
	live map[idemKey]uint64 // task_id → generation of its ring entry
	ring []idemEntry        // circular FIFO, grows up to cap
	head int                // oldest entry
	n    int                // entries in ring (live and tombstones)
}

type idemEntry struct {
	id  idemKey
	at  time.Duration // since base
	gen uint64
}

// idemKey is a task_id as a pointer-free map key: the bytes of an id of up
// to 36 bytes (a UUID, which is all the engine reserves), else the SHA-256
// of a longer one (n = longKey).
type idemKey struct {
	n  uint8
	id [36]byte
}

const longKey = 0xff

func keyOf(id string) idemKey {
	var k idemKey
	if len(id) <= len(k.id) {
		k.n = uint8(len(id))
		copy(k.id[:], id)
		return k
	}
	sum := sha256.Sum256([]byte(id))
	k.n = longKey
	copy(k.id[:], sum[:])
	return k
}

func newIdempotency(ttl time.Duration, capacity int) *idempotency {
	return &idempotency{ttl: ttl, cap: capacity, live: make(map[idemKey]uint64)}
}

// reserve records id at now; false means id was already seen within the TTL.
// The returned generation identifies this reservation for cancel.
func (s *idempotency) reserve(id string, now time.Time) (uint64, bool) {
	k := keyOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base.IsZero() {
		s.base = now
	}
	at := now.Sub(s.base)
	s.expire(at)
	if _, dup := s.live[k]; dup {
		return 0, false
	}
	if s.n == s.cap {
		s.evictOldest()
	}
	s.gen++
	if s.n == len(s.ring) {
		s.grow()
	}
	s.ring[(s.head+s.n)%len(s.ring)] = idemEntry{id: k, at: at, gen: s.gen}
	s.n++
	s.live[k] = s.gen
	return s.gen, true
}

// cancel forgets the reservation gen of id, if it is still the live one.
func (s *idempotency) cancel(id string, gen uint64) {
	k := keyOf(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[k] == gen {
		delete(s.live, k)
	}
}

// size is the number of remembered task_ids.
func (s *idempotency) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// expire evicts the entries older than the TTL at time at (since base).
func (s *idempotency) expire(at time.Duration) {
	for s.n > 0 && at-s.ring[s.head].at >= s.ttl {
		s.evictOldest()
	}
}

func (s *idempotency) evictOldest() {
	e := &s.ring[s.head]
	if s.live[e.id] == e.gen {
		delete(s.live, e.id)
	}
	*e = idemEntry{}
	s.head = (s.head + 1) % len(s.ring)
	s.n--
}

// grow doubles the ring (capped at cap), unrolling it so head becomes 0.
func (s *idempotency) grow() {
	size := max(16, 2*len(s.ring))
	size = min(size, s.cap)
	ring := make([]idemEntry, size)
	for i := range s.n {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}
