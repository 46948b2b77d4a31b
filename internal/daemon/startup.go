package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/node/backend"
)

// ErrConfig marks a start-up failure only an operator can fix (an unset
// api_key_env variable, say): cmd/meshnode exits 3 for it, which the
// systemd units do not restart. Everything else exits 1 and is retried.
var ErrConfig = errors.New("configuration")

type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Unwrap() error        { return e.err }
func (e configError) Is(target error) bool { return target == ErrConfig }

func configErrorf(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }

// bindError words a failed bind: a taken port names the address and the
// setting to change; other causes keep the system's words.
func bindError(what, addr, fix string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: %s is in use by another process; %s", what, addr, fix)
	}
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	return fmt.Errorf("%s: cannot listen on %s: %w; %s", what, addr, err, fix)
}

// lockHome takes the role's lock in dir for the process's life: a second
// `meshnode up` (or directory) on one home would share an identity and
// delete the first one's runtime files.
func lockHome(dir, name, role string) (*paths.Lock, error) {
	l, err := paths.AcquireLock(filepath.Join(dir, name))
	var le *paths.LockedError
	if errors.As(err, &le) {
		who := "another process"
		if le.PID > 0 {
			who = fmt.Sprintf("process %d", le.PID)
		}
		return nil, fmt.Errorf("%s: %s already runs on %s (lock %s); stop it or use another --home", role, who, dir, le.Path)
	}
	return l, err
}

// Backend probing. The probe interval is a quarter of the shorter of the
// mesh advert interval and the heartbeat fallback, within these bounds;
// with backend.DefaultFailThreshold (2) a dead backend is noticed within
// half an interval and announced at once (heartbeat and advert).
const (
	minProbeInterval = 250 * time.Millisecond
	maxProbeInterval = 5 * time.Second
)

func (d *daemon) probeInterval() time.Duration {
	iv := d.cfg.Directory.HeartbeatFallback.D()
	if a := d.cfg.Mesh.AdvertInterval.D(); d.cfg.Mesh.Enabled && a > 0 && a < iv {
		iv = a
	}
	return min(max(iv/4, minProbeInterval), maxProbeInterval)
}

// setupMonitor probes the backends once (so the node knows whether it can
// serve before it registers) and keeps probing while it runs. A backend
// that is down is not fatal: the node starts unavailable and becomes
// available when the backend answers.
func (d *daemon) setupMonitor(ctx context.Context) error {
	d.backendDown = map[int]bool{}
	m, err := backend.NewMonitor(d.be.router.Backends(),
		backend.ProbeInterval(d.probeInterval()),
		backend.MonitorLogger(d.o.Logs.For("backend")),
		backend.OnChange(d.onBackendChange))
	if err != nil {
		return fmt.Errorf("backend monitor: %w", err)
	}
	d.monitor = m
	m.ProbeAll(ctx)
	if !d.backendUp.Load() {
		d.log.Warn("backend does not answer: the node starts unavailable and becomes available when it answers",
			"backend", d.be.describe)
	}
	return nil
}

// onBackendChange runs on each backend health flip: the node's
// availability follows at once in /iicp/health, /readyz, the directory
// heartbeat and the mesh advert.
func (d *daemon) onBackendChange(st backend.BackendState) {
	d.mu.Lock()
	d.backendDown[st.Index] = !st.Healthy
	up := true
	for _, down := range d.backendDown {
		up = up && !down
	}
	d.mu.Unlock()
	if d.backendUp.Swap(up) == up {
		return
	}
	if up {
		d.log.Info("node available: backend answers")
	} else {
		d.log.Warn("node unavailable: backend does not answer")
	}
	if d.engine != nil {
		d.engine.ReportBackendHealth(up)
	}
	if d.mesh != nil {
		d.mesh.Readvertise()
	}
	for _, s := range d.sessions {
		s.Beat()
	}
}
