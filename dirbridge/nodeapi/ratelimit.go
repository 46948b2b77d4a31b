package nodeapi

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limiter is a keyed token bucket with bounded memory: keys live in two
// generations; when the current one reaches maxKeys the previous one is
// dropped and current becomes previous. Lookups and rotations are O(1)
// amortised, and a dropped key only gets a full bucket back, so memory
// stays bounded even when an attacker rotates keys.
type limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	maxKeys int
	cur     map[string]*bucket
	prev    map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newLimiter returns nil when perMin is 0 (limit disabled).
func newLimiter(perMin, burst, maxKeys int) *limiter {
	if perMin <= 0 {
		return nil
	}
	return &limiter{
		perSec: float64(perMin) / 60, burst: float64(burst), maxKeys: maxKeys,
		cur: make(map[string]*bucket), prev: make(map[string]*bucket),
	}
}

// allow takes one token for key at now. When none is left it returns the
// wait until one will be.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.cur[key]
	if !ok {
		if b, ok = l.prev[key]; ok {
			delete(l.prev, key)
		} else {
			b = &bucket{tokens: l.burst, last: now}
		}
		if len(l.cur) >= l.maxKeys {
			l.prev, l.cur = l.cur, make(map[string]*bucket, len(l.cur))
		}
		l.cur[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.perSec)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
	return false, wait
}

// ipKey is the rate-limit key for a source address: the address itself for
// IPv4, the /64 for IPv6 (one subscriber usually holds a whole /64).
// loopback reports whether the caller is on this host.
func ipKey(remoteAddr string) (key string, loopback bool) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return "unknown", false
	}
	a = a.Unmap()
	if a.IsLoopback() {
		return a.String(), true
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String(), false
	}
	return a.String(), false
}

// maxOriginKey bounds an Origin used as a key; real origins are short.
const maxOriginKey = 256
