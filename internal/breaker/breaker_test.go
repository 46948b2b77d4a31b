package breaker

import (
	"testing"
	"time"
)

// TestBreakerStates walks iicp-semantics.md §7.1 with a fake clock.
func TestBreakerStates(t *testing.T) {
	p := "peer-a"
	bs := New[string](5, 30*time.Second)
	t0 := time.Now()
	for i := range 4 {
		bs.Failure(p, t0)
		if bs.State(p, t0) != Closed || !bs.Allow(p, t0) {
			t.Fatalf("open after %d failures", i+1)
		}
	}
	bs.Success(p) // success resets the consecutive count
	for range 4 {
		bs.Failure(p, t0)
	}
	if bs.State(p, t0) != Closed {
		t.Fatal("count not reset by success")
	}
	bs.Failure(p, t0)
	if bs.State(p, t0) != Open || bs.Allow(p, t0.Add(29*time.Second)) {
		t.Fatal("not open after 5 consecutive failures")
	}
	t1 := t0.Add(31 * time.Second)
	if bs.State(p, t1) != HalfOpen || !bs.Allow(p, t1) {
		t.Fatal("no half-open probe after 30 s")
	}
	if bs.Allow(p, t1) {
		t.Fatal("second concurrent probe admitted")
	}
	bs.Failure(p, t1) // failed probe reopens
	if bs.State(p, t1.Add(time.Second)) != Open {
		t.Fatal("failed probe did not reopen")
	}
	t2 := t1.Add(31 * time.Second)
	if !bs.Allow(p, t2) {
		t.Fatal("no probe after reopen period")
	}
	bs.Success(p)
	if bs.State(p, t2) != Closed || bs.Consecutive(p) != 0 {
		t.Fatal("successful probe did not close")
	}
	// A probe released without verdict lets the next call probe.
	for range 5 {
		bs.Failure(p, t2)
	}
	t3 := t2.Add(31 * time.Second)
	if !bs.Allow(p, t3) {
		t.Fatal("no probe")
	}
	bs.Release(p)
	if !bs.Allow(p, t3) {
		t.Fatal("released probe blocks the next")
	}
}
