//go:build unix

package testutil

import (
	"testing"
	"time"
)

// ProcessCPU grows while this process computes (bounded: at most 5 s).
func TestProcessCPUGrows(t *testing.T) {
	start := ProcessCPU()
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for ProcessCPU() <= start && time.Now().Before(deadline) {
		for i := range 100_000 {
			x += i
		}
	}
	if ProcessCPU() <= start {
		t.Fatalf("CPU time stayed at %v after busy work (%d)", start, x)
	}
}
