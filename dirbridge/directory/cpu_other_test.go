//go:build !unix

package directory

import "time"

// processCPU is unavailable here; the CPU-per-request metric reads 0.
func processCPU() time.Duration { return 0 }
