package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Circuit states (iicp-semantics.md §7.1).
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// maxBreakers bounds breaker memory; closed breakers with no failures carry
// no information and are dropped first.
const maxBreakers = 4096

// breakers holds one circuit breaker per peer: threshold consecutive
// failures open it for openFor; then a single probe is let through
// (half-open), whose success closes and whose failure reopens it.
type breakers struct {
	threshold int
	openFor   time.Duration

	mu sync.Mutex
	m  map[peer.ID]*breaker
}

type breaker struct {
	failures  int
	openUntil time.Time // zero when closed
	probing   bool      // a half-open probe is in flight
}

func newBreakers(threshold int, openFor time.Duration) *breakers {
	return &breakers{threshold: threshold, openFor: openFor, m: make(map[peer.ID]*breaker)}
}

// state reports p's circuit state at now without changing it.
func (bs *breakers) state(p peer.ID, now time.Time) string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[p]
	switch {
	case !ok || b.openUntil.IsZero():
		return BreakerClosed
	case now.Before(b.openUntil):
		return BreakerOpen
	}
	return BreakerHalfOpen
}

// allow reports whether a call to p may go ahead now. In half-open state it
// admits exactly one probe until that probe reports back.
func (bs *breakers) allow(p peer.ID, now time.Time) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[p]
	if !ok || b.openUntil.IsZero() {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// success records a successful call: the circuit closes.
func (bs *breakers) success(p peer.ID) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	delete(bs.m, p)
}

// failure records a failed call at now.
func (bs *breakers) failure(p peer.ID, now time.Time) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[p]
	if !ok {
		if len(bs.m) >= maxBreakers {
			bs.pruneLocked(now)
		}
		b = &breaker{}
		bs.m[p] = b
	}
	b.failures++
	if b.probing || b.failures >= bs.threshold {
		b.openUntil = now.Add(bs.openFor)
		b.probing = false
	}
}

// release ends a half-open probe that reported neither success nor failure
// of the peer (the caller's own error), so the next call may probe.
func (bs *breakers) release(p peer.ID) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.m[p]; ok {
		b.probing = false
	}
}

// pruneLocked drops breakers that are closed, or open but long expired.
func (bs *breakers) pruneLocked(now time.Time) {
	for p, b := range bs.m {
		if b.openUntil.IsZero() || now.Sub(b.openUntil) > bs.openFor {
			delete(bs.m, p)
		}
	}
}

// consecutive is p's current count of consecutive failures.
func (bs *breakers) consecutive(p peer.ID) int {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.m[p]; ok {
		return b.failures
	}
	return 0
}
