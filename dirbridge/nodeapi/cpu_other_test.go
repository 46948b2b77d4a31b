//go:build !unix

package nodeapi_test

import "time"

// processCPU is unavailable here; the CPU-per-request metrics read 0.
func processCPU() time.Duration { return 0 }
