package directory

import (
	"sync"
	"time"
)

// limiter is a rolling-window counter per key (source IP, node): at most
// limit events in any window. It keeps the timestamps of accepted events,
// so memory per key is bounded by limit; idle keys are swept.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	keys   map[string][]time.Time
	// maxKeys bounds memory under a spray of source addresses; when full,
	// the sweep runs early and, failing that, new keys are refused.
	maxKeys int
}

// defaultMaxLimiterKeys trades memory (≈ limit×24 B per key) for how many
// distinct sources can be tracked at once.
const defaultMaxLimiterKeys = 100_000

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, keys: make(map[string][]time.Time), maxKeys: defaultMaxLimiterKeys}
}

// allow records an event for key at now. When refused it returns the wait
// until the oldest event in the window leaves it. limit <= 0 disables.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.keys[key]
	cut := now.Add(-l.window)
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.limit {
		l.keys[key] = ts
		return false, ts[0].Sub(cut)
	}
	if _, ok := l.keys[key]; !ok && len(l.keys) >= l.maxKeys {
		l.sweepLocked(now)
		if len(l.keys) >= l.maxKeys {
			return false, l.window
		}
	}
	l.keys[key] = append(ts, now)
	return true, 0
}

// sweep drops keys with no event inside the window.
func (l *limiter) sweep(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sweepLocked(now)
	l.mu.Unlock()
}

func (l *limiter) sweepLocked(now time.Time) {
	cut := now.Add(-l.window)
	for k, ts := range l.keys {
		if len(ts) == 0 || !ts[len(ts)-1].After(cut) {
			delete(l.keys, k)
		}
	}
}
