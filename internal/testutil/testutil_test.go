package testutil

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.String(); len(got) != 400 || strings.Trim(got, "x") != "" {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestWaitForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	took := WaitFor(t, 5*time.Second, "third check", func() bool { return n.Add(1) >= 3 })
	if n.Load() != 3 || took > 5*time.Second {
		t.Fatalf("checks %d, took %v", n.Load(), took)
	}
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestWaitForFailsAfterDeadline(t *testing.T) {
	f := &fakeTB{TB: t}
	// The real Fatalf stops the goroutine; the fake one does not, so the
	// condition turns true once the failure is recorded.
	start := time.Now()
	WaitFor(f, 20*time.Millisecond, "never", func() bool { return f.failed != "" })
	if f.failed == "" || time.Since(start) < 20*time.Millisecond {
		t.Fatal("no failure reported after the deadline")
	}
}
