package breaker

import (
	"sync"
	"time"
)

// Circuit states (iicp-semantics.md §7.1).
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half-open"
)

// maxEntries bounds breaker memory; closed breakers with no failures carry
// no information and are dropped first.
const maxEntries = 4096

// Set holds one circuit breaker per target: threshold consecutive failures
// open it for openFor; then a single probe is let through (half-open),
// whose success closes and whose failure reopens it. The zero value is not
// usable; call New. A Set is safe for concurrent use.
type Set[K comparable] struct {
	threshold int
	openFor   time.Duration

	mu sync.Mutex
	m  map[K]*entry
}

type entry struct {
	failures  int
	openUntil time.Time // zero when closed
	probing   bool      // a half-open probe is in flight
}

// New returns a Set with the given threshold (≥ 1) and open duration.
func New[K comparable](threshold int, openFor time.Duration) *Set[K] {
	return &Set[K]{threshold: max(threshold, 1), openFor: openFor, m: make(map[K]*entry)}
}

// State reports k's circuit state at now without changing it.
func (s *Set[K]) State(k K, now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	switch {
	case !ok || b.openUntil.IsZero():
		return Closed
	case now.Before(b.openUntil):
		return Open
	}
	return HalfOpen
}

// Allow reports whether a call to k may go ahead now. In half-open state it
// admits exactly one probe until that probe reports back.
func (s *Set[K]) Allow(k K, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok || b.openUntil.IsZero() {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// Success records a successful call: the circuit closes.
func (s *Set[K]) Success(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
}

// Failure records a failed call at now.
func (s *Set[K]) Failure(k K, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok {
		if len(s.m) >= maxEntries {
			s.pruneLocked(now)
		}
		b = &entry{}
		s.m[k] = b
	}
	b.failures++
	if b.probing || b.failures >= s.threshold {
		b.openUntil = now.Add(s.openFor)
		b.probing = false
	}
}

// Release ends a half-open probe that reported neither success nor failure
// of the target (the caller's own error, a load signal), so the next call
// may probe.
func (s *Set[K]) Release(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[k]; ok {
		b.probing = false
	}
}

// pruneLocked drops breakers that are closed, or open but long expired.
func (s *Set[K]) pruneLocked(now time.Time) {
	for k, b := range s.m {
		if b.openUntil.IsZero() || now.Sub(b.openUntil) > s.openFor {
			delete(s.m, k)
		}
	}
}

// Consecutive is k's current count of consecutive failures.
func (s *Set[K]) Consecutive(k K) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.m[k]; ok {
		return b.failures
	}
	return 0
}
