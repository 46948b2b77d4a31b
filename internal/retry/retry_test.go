package retry

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestBackoffJitter(t *testing.T) {
	for n := 1; n <= 3; n++ {
		want := float64(200*time.Millisecond) * math.Pow(2, float64(n-1))
		for range 200 {
			d := float64(Backoff(200*time.Millisecond, n))
			if d < 0.8*want || d > 1.2*want {
				t.Fatalf("Backoff(%d) = %v outside ±20%% of %v", n, time.Duration(d), time.Duration(want))
			}
		}
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
}
