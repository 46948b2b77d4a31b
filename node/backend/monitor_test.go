package backend

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
)

// flakyBackend fails Check while down is set.
type flakyBackend struct {
	Echo
	down   atomic.Bool
	checks atomic.Int64
	block  bool // Check blocks until ctx ends
}

func (f *flakyBackend) Name() string { return "flaky" }
func (f *flakyBackend) Check(ctx context.Context) error {
	f.checks.Add(1)
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.down.Load() {
		return errors.New("probe failed")
	}
	return nil
}

// waitFor waits up to 5 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, cond)
}

func TestMonitorThresholdAndRecovery(t *testing.T) {
	f := &flakyBackend{}
	echo := NewEcho()
	var mu sync.Mutex
	var changes []bool
	m, err := NewMonitor([]Backend{f, echo}, FailThreshold(2), ProbeInterval(time.Hour),
		OnChange(func(s BackendState) {
			if s.Name == "flaky" {
				mu.Lock()
				changes = append(changes, s.Healthy)
				mu.Unlock()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Healthy() || m.AnyHealthy() {
		t.Fatal("healthy before any probe")
	}
	ctx := context.Background()
	m.ProbeAll(ctx)
	if !m.Healthy() || !m.HealthyBackend(f) {
		t.Fatalf("states %+v", m.States())
	}
	// One failure is ridden out; the second crosses the threshold.
	f.down.Store(true)
	m.ProbeAll(ctx)
	if !m.HealthyBackend(f) {
		t.Fatal("unhealthy after one failure with threshold 2")
	}
	m.ProbeAll(ctx)
	if m.Healthy() || m.HealthyBackend(f) || !m.AnyHealthy() {
		t.Fatalf("states %+v", m.States())
	}
	st := m.States()[0]
	if st.Failures != 2 || st.LastError != "probe failed" || !st.Checked || st.Name != "flaky" {
		t.Fatalf("state %+v", st)
	}
	// One success recovers.
	f.down.Store(false)
	m.ProbeAll(ctx)
	if !m.Healthy() {
		t.Fatal("not recovered")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 3 || !changes[0] || changes[1] || !changes[2] {
		t.Fatalf("transitions %v", changes)
	}
}

func TestMonitorNeverHealthyIsDownAtOnce(t *testing.T) {
	f := &flakyBackend{}
	f.down.Store(true)
	m, err := NewMonitor([]Backend{f}, FailThreshold(3))
	if err != nil {
		t.Fatal(err)
	}
	m.ProbeAll(context.Background())
	if m.Healthy() || !m.States()[0].Checked {
		t.Fatalf("state %+v", m.States()[0])
	}
}

func TestMonitorServeProbesAndStops(t *testing.T) {
	f := &flakyBackend{}
	m, err := NewMonitor([]Backend{f}, ProbeInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	waitFor(t, "three probes", func() bool { return f.checks.Load() >= 3 })
	if !m.Healthy() {
		t.Fatal("not healthy while serving")
	}
	f.down.Store(true)
	waitFor(t, "unhealthy", func() bool { return !m.Healthy() })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}

func TestMonitorProbeTimeout(t *testing.T) {
	f := &flakyBackend{block: true}
	m, err := NewMonitor([]Backend{f}, ProbeTimeout(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m.ProbeAll(context.Background())
	if time.Since(start) > 5*time.Second || m.Healthy() {
		t.Fatalf("probe not bounded or hung backend healthy: %+v", m.States()[0])
	}
	if m.States()[0].LastError != context.DeadlineExceeded.Error() {
		t.Fatal("no error recorded")
	}
}

func TestNewMonitorRejects(t *testing.T) {
	if _, err := NewMonitor(nil); err == nil {
		t.Fatal("no backends accepted")
	}
	if _, err := NewMonitor([]Backend{nil}); err == nil {
		t.Fatal("nil backend accepted")
	}
	for _, o := range []MonitorOption{ProbeInterval(0), ProbeTimeout(-1), FailThreshold(0), MonitorLogger(nil)} {
		if _, err := NewMonitor([]Backend{NewEcho()}, o); err == nil {
			t.Fatal("bad option accepted")
		}
	}
}
