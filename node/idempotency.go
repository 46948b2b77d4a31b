package node

import (
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
type idempotency struct {
	mu   sync.Mutex
	ttl  time.Duration
	cap  int
	gen  uint64
	live map[string]uint64 // task_id → generation of its ring entry
	ring []idemEntry       // circular FIFO, grows up to cap
	head int               // oldest entry
	n    int               // entries in ring (live and tombstones)
}

type idemEntry struct {
	id  string
	at  time.Time
	gen uint64
}

func newIdempotency(ttl time.Duration, capacity int) *idempotency {
	return &idempotency{ttl: ttl, cap: capacity, live: make(map[string]uint64)}
}

// reserve records id at now; false means id was already seen within the TTL.
// The returned generation identifies this reservation for cancel.
func (s *idempotency) reserve(id string, now time.Time) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if _, dup := s.live[id]; dup {
		return 0, false
	}
	if s.n == s.cap {
		s.evictOldest()
	}
	s.gen++
	if s.n == len(s.ring) {
		s.grow()
	}
	s.ring[(s.head+s.n)%len(s.ring)] = idemEntry{id: id, at: now, gen: s.gen}
	s.n++
	s.live[id] = s.gen
	return s.gen, true
}

// cancel forgets the reservation gen of id, if it is still the live one.
func (s *idempotency) cancel(id string, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[id] == gen {
		delete(s.live, id)
	}
}

// size is the number of remembered task_ids.
func (s *idempotency) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

func (s *idempotency) expire(now time.Time) {
	for s.n > 0 && now.Sub(s.ring[s.head].at) >= s.ttl {
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
