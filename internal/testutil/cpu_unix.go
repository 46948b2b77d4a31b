//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// ProcessCPU is the user+system CPU time of this process so far, which the
// benchmarks divide by their request count.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
