package mesh

import (
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxLimiterPeers bounds the rate limiter's memory: a flood of fresh peer
// IDs cannot grow it without bound.
const maxLimiterPeers = 4096

// rateLimiter is a per-peer token bucket for received adverts.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[peer.ID]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// readyIn is how long until b holds a whole token at rate (0: now).
func (b *bucket) readyIn(now time.Time, rate float64) time.Duration {
	have := b.tokens + max(0, now.Sub(b.last).Seconds())*rate
	if have >= 1 || rate <= 0 {
		return 0
	}
	return time.Duration((1 - have) / rate * float64(time.Second))
}

// take refills b at rate tokens per second up to burst, then takes one
// token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: make(map[peer.ID]*bucket)}
}

// allow takes one token from p's bucket if it has one.
func (r *rateLimiter) allow(p peer.ID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets[p]
	if !ok {
		if len(r.buckets) >= maxLimiterPeers {
			r.pruneLocked(now)
			if len(r.buckets) >= maxLimiterPeers {
				return false
			}
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[p] = b
	}
	return b.take(now, r.rate, r.burst)
}

// pruneLocked drops buckets that have refilled completely: forgetting them
// changes nothing.
func (r *rateLimiter) pruneLocked(now time.Time) {
	full := time.Duration(r.burst / r.rate * float64(time.Second))
	for p, b := range r.buckets {
		if now.Sub(b.last) >= full {
			delete(r.buckets, p)
		}
	}
}

// stats counts mesh events by name (advert reject reasons, calls).
type stats struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (s *stats) count(name string) {
	s.mu.Lock()
	if s.counts == nil {
		s.counts = make(map[string]uint64)
	}
	s.counts[name]++
	s.mu.Unlock()
}

func (s *stats) snapshot() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// logPeer renders a peer ID shortened for logs.
type logPeer peer.ID

func (p logPeer) LogValue() slog.Value {
	s := peer.ID(p).String()
	if len(s) > 10 {
		s = "…" + s[len(s)-8:]
	}
	return slog.StringValue(s)
}
