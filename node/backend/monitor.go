package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Monitor defaults, listed once.
const (
	// DefaultProbeInterval trades detection delay against load on the
	// backend: a GET /models every 15 s is negligible even for Ollama.
	DefaultProbeInterval = 15 * time.Second
	// DefaultProbeTimeout bounds one probe; a backend slower than this to
	// list models is treated as down.
	DefaultProbeTimeout = 5 * time.Second
	// DefaultFailThreshold is how many consecutive failed probes turn a
	// healthy backend unhealthy: 2 rides out one dropped probe without
	// flapping the node's advertised availability.
	DefaultFailThreshold = 2
)

// BackendState is the last known health of one backend.
type BackendState struct {
	Index     int       // position in the Monitor's backend list
	Name      string    // Backend.Name()
	Target    string    // fmt.Stringer description, without secrets
	Healthy   bool      // false until the first successful probe
	Checked   bool      // at least one probe has completed
	Failures  int       // consecutive failed probes
	LastCheck time.Time // end of the last probe
	LastError string    // short cause of the last failure ("" when healthy)
}

// Monitor probes backends with Check on an interval and keeps their state,
// so the engine can report available/degraded (GET /iicp/health) and the
// directory heartbeat can carry available=false.
type Monitor struct {
	backends  []Backend
	interval  time.Duration
	timeout   time.Duration
	threshold int
	log       *slog.Logger
	onChange  func(BackendState)

	mu     sync.Mutex
	states []BackendState
}

// MonitorOption configures a Monitor.
type MonitorOption func(*Monitor) error

// ProbeInterval sets the time between probe rounds.
func ProbeInterval(d time.Duration) MonitorOption {
	return func(m *Monitor) error {
		if d <= 0 {
			return errors.New("backend: probe interval must be positive")
		}
		m.interval = d
		return nil
	}
}

// ProbeTimeout bounds one backend probe.
func ProbeTimeout(d time.Duration) MonitorOption {
	return func(m *Monitor) error {
		if d <= 0 {
			return errors.New("backend: probe timeout must be positive")
		}
		m.timeout = d
		return nil
	}
}

// FailThreshold sets how many consecutive failures mark a healthy backend down.
func FailThreshold(n int) MonitorOption {
	return func(m *Monitor) error {
		if n < 1 {
			return errors.New("backend: fail threshold must be at least 1")
		}
		m.threshold = n
		return nil
	}
}

// MonitorLogger sets the logger for health transitions.
func MonitorLogger(l *slog.Logger) MonitorOption {
	return func(m *Monitor) error {
		if l == nil {
			return errors.New("backend: nil logger")
		}
		m.log = l
		return nil
	}
}

// OnChange is called (from the probing goroutine) whenever a backend's
// Healthy flag flips, including its first result.
func OnChange(fn func(BackendState)) MonitorOption {
	return func(m *Monitor) error { m.onChange = fn; return nil }
}

// NewMonitor watches backends (typically Router.Backends()).
func NewMonitor(backends []Backend, opts ...MonitorOption) (*Monitor, error) {
	if len(backends) == 0 {
		return nil, errors.New("backend: monitor needs at least one backend")
	}
	m := &Monitor{
		backends:  backends,
		interval:  DefaultProbeInterval,
		timeout:   DefaultProbeTimeout,
		threshold: DefaultFailThreshold,
		log:       slog.New(slog.DiscardHandler),
		states:    make([]BackendState, len(backends)),
	}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	for i, b := range backends {
		if b == nil {
			return nil, fmt.Errorf("backend: monitor backend %d is nil", i)
		}
		m.states[i] = BackendState{Index: i, Name: b.Name(), Target: describe(b)}
	}
	m.log = m.log.With("component", "backend-monitor")
	return m, nil
}

// describe labels a backend without secrets.
func describe(b Backend) string {
	if s, ok := b.(fmt.Stringer); ok {
		return s.String()
	}
	return b.Name()
}

// Serve probes immediately, then every interval, until ctx ends. It
// always returns nil after ctx is cancelled (a stopped monitor is not an error).
func (m *Monitor) Serve(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ProbeAll runs one probe round now, backends in parallel, and waits for it.
func (m *Monitor) ProbeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for i, b := range m.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, m.timeout)
			err := b.Check(pctx)
			cancel()
			if ctx.Err() != nil {
				return // shutting down: a cancelled probe says nothing about the backend
			}
			m.record(i, err)
		}()
	}
	wg.Wait()
}

// record applies one probe result with the failure threshold.
func (m *Monitor) record(i int, err error) {
	m.mu.Lock()
	s := &m.states[i]
	was, first := s.Healthy, !s.Checked
	s.Checked, s.LastCheck = true, time.Now()
	if err == nil {
		s.Healthy, s.Failures, s.LastError = true, 0, ""
	} else {
		s.Failures++
		s.LastError = err.Error()
		// A backend never seen healthy is down at once; a healthy one only
		// after threshold consecutive failures.
		if !s.Healthy || s.Failures >= m.threshold {
			s.Healthy = false
		}
	}
	snap := *s
	m.mu.Unlock()
	if first || was != snap.Healthy {
		if snap.Healthy {
			m.log.Info("backend healthy", "backend", snap.Name, "target", snap.Target)
		} else {
			m.log.Warn("backend unhealthy", "backend", snap.Name, "target", snap.Target,
				"failures", snap.Failures, "error", snap.LastError)
		}
		if m.onChange != nil {
			m.onChange(snap)
		}
	}
}

// Healthy reports whether every backend's last state is healthy. It is
// false before the first probe round completes.
func (m *Monitor) Healthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.states {
		if !s.Healthy {
			return false
		}
	}
	return true
}

// AnyHealthy reports whether at least one backend is healthy: the node can
// still serve some intents (health "degraded" rather than unavailable).
func (m *Monitor) AnyHealthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.states {
		if s.Healthy {
			return true
		}
	}
	return false
}

// HealthyBackend reports the state of one backend b (false if not monitored).
func (m *Monitor) HealthyBackend(b Backend) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.backends {
		if sameBackend(x, b) {
			return m.states[i].Healthy
		}
	}
	return false
}

// States returns a snapshot of every backend's state.
func (m *Monitor) States() []BackendState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]BackendState, len(m.states))
	copy(out, m.states)
	return out
}
