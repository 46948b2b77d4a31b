package tlsutil

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// ACME manager's renewal loop must end with its context).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
