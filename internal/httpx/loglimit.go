package httpx

import (
	"sync"
	"time"
)

// LogLimiter allows at most n log lines per interval for one kind of event
// a remote party can trigger at will (refused streams, bad tokens), so an
// attacker cannot turn our logs into an unbounded write. Lines beyond the
// budget are counted and the count is reported with the next allowed line.
type LogLimiter struct {
	mu       sync.Mutex
	n        int
	interval time.Duration
	start    time.Time
	used     int
	dropped  int
}

// NewLogLimiter allows n lines per interval.
func NewLogLimiter(n int, interval time.Duration) *LogLimiter {
	return &LogLimiter{n: n, interval: interval}
}

// Allow reports whether a line may be written at now and how many lines
// were suppressed since the last allowed one.
func (l *LogLimiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.interval {
		l.start, l.used = now, 0
	}
	if l.used >= l.n {
		l.dropped++
		return false, 0
	}
	l.used++
	suppressed, l.dropped = l.dropped, 0
	return true, suppressed
}
