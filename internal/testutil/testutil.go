package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for one writer goroutine (a logger in a
// server) and a reading test at the same time.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// maxPoll caps the pause between two checks: short enough for
// millisecond-scale conditions, long enough not to spin on ones that run a
// subprocess.
const maxPoll = 50 * time.Millisecond

// WaitFor checks cond until it holds and returns how long that took; it
// fails tb when within passes first. The pause between checks starts at a
// millisecond and doubles up to maxPoll.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(within)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
	return time.Since(start)
}
