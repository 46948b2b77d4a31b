package httpx

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Limiter's memory (≈ limit×8 B + ~150 B per key).
const DefaultMaxKeys = 100_000

// Limiter allows at most limit events per key in any rolling window. It
// keeps the times of accepted events, so memory per key is bounded by
// limit, and at most maxKeys keys: when the table is full the least
// recently used key is evicted. Eviction only hands a key a fresh budget;
// refusing new keys instead would let a spray of source addresses lock
// every newcomer out. A nil *Limiter allows everything.
type Limiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxKeys int
	keys    map[string]*list.Element
	lru     list.List // front = most recently used; values are *keyEvents
}

type keyEvents struct {
	key string
	ts  []int64 // accepted events (Unix ns) inside the window, oldest first
}

// NewLimiter returns a limiter of limit events per window and at most
// maxKeys keys (DefaultMaxKeys when maxKeys <= 0); nil when limit <= 0
// (limit disabled).
func NewLimiter(limit int, window time.Duration, maxKeys int) *Limiter {
	if limit <= 0 || window <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{limit: limit, window: window, maxKeys: maxKeys, keys: make(map[string]*list.Element)}
}

// Allow records an event for key at now. When refused it returns the wait
// until the oldest event in the window leaves it.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ke := l.touch(key)
	cut := now.Add(-l.window).UnixNano()
	i := 0
	for i < len(ke.ts) && ke.ts[i] <= cut {
		i++
	}
	ke.ts = ke.ts[i:]
	if len(ke.ts) >= l.limit {
		return false, time.Duration(ke.ts[0] - cut)
	}
	ke.ts = append(ke.ts, now.UnixNano())
	return true, 0
}

// Blocked reports, without recording an event, whether key has used up
// its budget, and the wait until it has not.
func (l *Limiter) Blocked(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.keys[key]
	if !ok {
		return false, 0
	}
	ts := el.Value.(*keyEvents).ts
	cut := now.Add(-l.window).UnixNano()
	n := 0
	for _, t := range ts {
		if t > cut {
			n++
		}
	}
	if n < l.limit {
		return false, 0
	}
	return true, time.Duration(ts[len(ts)-n] - cut)
}

// touch returns key's entry, creating it (and evicting the least recently
// used key when full), and marks it most recently used.
func (l *Limiter) touch(key string) *keyEvents {
	if el, ok := l.keys[key]; ok {
		l.lru.MoveToFront(el)
		return el.Value.(*keyEvents)
	}
	for len(l.keys) >= l.maxKeys {
		old := l.lru.Back()
		delete(l.keys, old.Value.(*keyEvents).key)
		l.lru.Remove(old)
	}
	ke := &keyEvents{key: key}
	l.keys[key] = l.lru.PushFront(ke)
	return ke
}

// Sweep drops keys with no event inside the window (memory hygiene; the
// LRU bound holds without it).
func (l *Limiter) Sweep(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := now.Add(-l.window).UnixNano()
	for el := l.lru.Back(); el != nil; {
		prev := el.Prev()
		ke := el.Value.(*keyEvents)
		if len(ke.ts) == 0 || ke.ts[len(ke.ts)-1] <= cut {
			delete(l.keys, ke.key)
			l.lru.Remove(el)
		}
		el = prev
	}
}

// Len is the number of tracked keys.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// SourceKey is the rate-limit key of a source address ("ip", "ip:port" or
// "[ip]:port"): the IPv4 address itself, the /64 for IPv6 (one subscriber
// usually holds a whole /64, so per-address keys would give one host 2^64
// budgets). Unparsable input maps to one shared "unknown" key.
func SourceKey(addr string) string {
	a, ok := parseSource(addr)
	if !ok {
		return "unknown"
	}
	return AddrKey(a)
}

// AddrKey is SourceKey for a parsed address.
func AddrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() && !a.IsLoopback() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.WithZone("").String()
}

func parseSource(addr string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr(), true
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}
