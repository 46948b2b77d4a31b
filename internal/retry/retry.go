package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// maxDoublings caps the exponent so a long retry series cannot overflow;
// IICP's standard policy stops at 3 attempts, far below it.
const maxDoublings = 8

// Backoff is the pause before retry n (n ≥ 1): base·2^(n-1) with ±20 %
// jitter (iicp-semantics.md §6.1: 200 ms base, ×2, ±20 %).
func Backoff(base time.Duration, n int) time.Duration {
	d := base << min(max(n-1, 0), maxDoublings)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Sleep waits d or until ctx ends, whichever is first, and returns ctx's
// error in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
