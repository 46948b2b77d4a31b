//go:build !unix

package testutil

import "time"

// ProcessCPU is unavailable here; CPU-per-request metrics read 0.
func ProcessCPU() time.Duration { return 0 }
