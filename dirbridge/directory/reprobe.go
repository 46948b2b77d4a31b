package directory

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
)

// Active reachability probing (iicp-dir.md §3.9c, DIR-PROBE-NODE-01): the
// directory itself re-checks every live node's endpoint with a TCP connect
// (5 s timeout, SSRF rules applied at dial time by the prober's dialer) on
// a 300 s cadence, so a node that stops answering leaves discover even
// while it keeps heartbeating, and comes back when it answers again.
//
// Invariants:
//   - one address (host:port) is dialled at most once per ReprobeInterval,
//     however many nodes share it: probes are scheduled per address, and an
//     address's next slot is set before its probe starts;
//   - demotion needs two consecutive failed probes (the confirm-probe rule
//     of iicp-dir.md §3.7 #413: never downgrade on a single failure); one
//     success restores;
//   - first probes of an address are spread uniformly over one interval and
//     later ones jittered by up to a tenth, so a restart or a registration
//     burst does not probe everything at once;
//   - at most ReprobeConcurrency probes are in flight.

// Reprobe constants.
const (
	// minReprobeInterval is iicp-dir.md §3.14's directory node probe
	// interval, the floor outside dev mode.
	minReprobeInterval = 300 * time.Second
	// reprobeConfirm failed probes in a row demote a node.
	reprobeConfirm = 2
	// reprobeFresh is how long a probe counts as "recent" for the health
	// block's observed reachability (§3.9c: within 10 minutes).
	reprobeFresh = 10 * time.Minute
	// probeTestID names the requirement in the health block.
	probeTestID = "DIR-PROBE-NODE-01"
)

// reachState is the outcome of the directory's probes of one node.
type reachState struct {
	At       time.Time `json:"at"`
	OK       bool      `json:"ok"`
	Failures int       `json:"failures"`
	Down     bool      `json:"down"` // demoted: confirmed unreachable
}

// unreachable reports a confirmed probe failure (nil-safe).
func (r *reachState) unreachable() bool { return r != nil && r.Down }

// tier is the node's reachability_tier: "direct" while its route is
// verified (at registration, and by every probe since), "unreachable" once
// demoted — a value only detail views show, since discover never returns
// such a node (docs/spec-decisions.md).
func (r *reachState) tier() string {
	if r.unreachable() {
		return "unreachable"
	}
	return "direct"
}

// reachComponent is health.components.reachability: the directory's own
// observation when it probed recently, else the heartbeat-derived score.
func (s *Server) reachComponent(st *nodeState, heartbeat float64, now time.Time) map[string]any {
	r := st.Reach
	if r == nil || now.Sub(r.At) > reprobeFresh {
		return map[string]any{"score": heartbeat, "observed": false}
	}
	score := 0.0
	if r.OK {
		score = 1
	}
	return map[string]any{"score": score, "observed": true, "last_probe_at": r.At.UTC(), "test_id": probeTestID}
}

// reprober schedules and runs the probes. Its state is owned by run.
type reprober struct {
	s        *Server
	interval time.Duration
	tick     time.Duration
	workers  int
	next     map[string]time.Time // address -> earliest next probe
}

// newReprober probes each address every interval (plus jitter), checking
// for due addresses every tenth of it (at most every 30 s).
func newReprober(s *Server, interval time.Duration, workers int) *reprober {
	return &reprober{s: s, interval: interval, tick: min(max(interval/10, 10*time.Millisecond), 30*time.Second),
		workers: max(workers, 1), next: map[string]time.Time{}}
}

// run probes due addresses every tick until ctx ends.
func (p *reprober) run(ctx context.Context) {
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.round(ctx)
		}
	}
}

// round probes every address that is due and applies the outcomes.
func (p *reprober) round(ctx context.Context) {
	due := p.dueAddresses(p.s.now())
	if len(due) == 0 {
		return
	}
	sem := make(chan struct{}, p.workers)
	var wg sync.WaitGroup
	for addr, entries := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := p.s.prober.reachable(ctx, addr)
			if ctx.Err() != nil {
				return // shutting down: not the node's fault
			}
			p.s.metrics.reprobes.WithLabelValues(probeResult(err)).Inc()
			for _, e := range entries {
				p.s.recordProbe(e, err, p.s.now())
			}
		}()
	}
	wg.Wait()
}

// dueAddresses groups live nodes by endpoint address and returns the
// groups whose slot has come, booking each one's next slot.
func (p *reprober) dueAddresses(now time.Time) map[string][]*entry {
	groups := map[string][]*entry{}
	p.s.store.idx.forAll(func(e *entry) {
		if !p.s.live(e.state.Load(), now) {
			return // dormant: heartbeats, not probes, bring it back
		}
		if addr, ok := endpointAddr(e.rec.Endpoint); ok {
			groups[addr] = append(groups[addr], e)
		}
	})
	for addr := range p.next {
		if _, ok := groups[addr]; !ok {
			delete(p.next, addr) // gone: a later return starts a fresh schedule
		}
	}
	due := map[string][]*entry{}
	for addr, es := range groups {
		at, seen := p.next[addr]
		switch {
		case !seen:
			// Just verified by its registration probe: first slot spread
			// over one interval.
			p.next[addr] = now.Add(rand.N(p.interval) + 1)
		case !now.Before(at):
			p.next[addr] = now.Add(p.interval + rand.N(p.interval/10+1))
			due[addr] = es
		}
	}
	return due
}

// endpointAddr is the host:port a node's endpoint URL dials.
func endpointAddr(endpoint string) (string, bool) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() == "" {
		return "", false
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	case u.Scheme == "http":
		port = "80"
	default:
		return "", false
	}
	return net.JoinHostPort(u.Hostname(), port), true
}

// recordProbe applies one probe outcome to a node: a success clears
// failures and restores a demoted node; the reprobeConfirm-th failure in a
// row demotes it. Ranks and the stored state follow a change of verdict.
func (s *Server) recordProbe(e *entry, probeErr error, now time.Time) {
	for range maxStateCAS {
		old := e.state.Load()
		r := reachState{At: now, OK: probeErr == nil}
		if old.Reach != nil && !r.OK {
			r.Failures, r.Down = old.Reach.Failures, old.Reach.Down
		}
		if !r.OK {
			r.Failures++
			r.Down = r.Down || r.Failures >= reprobeConfirm
		}
		next := *old
		next.Reach = &r
		if !e.state.CompareAndSwap(old, &next) {
			continue
		}
		s.store.markDirty(e.rec.NodeID, nil)
		if r.Down != old.Reach.unreachable() {
			s.store.idx.refreshRanks(e)
			s.logReach(e.rec.NodeID, r.Down, probeErr)
		}
		return
	}
}

func (s *Server) logReach(id string, down bool, probeErr error) {
	if !down {
		s.log.Info("node answers its active probe again; discoverable", "node_id", id, "test_id", probeTestID)
		return
	}
	s.log.Warn("node failed its active probes; hidden from discover until it answers",
		"node_id", id, "failures", reprobeConfirm, "reason", probeResult(probeErr), "test_id", probeTestID)
}

// probeResult is a probe's bounded outcome label (the #413 reason names).
func probeResult(err error) string {
	switch {
	case err == nil:
		return "probe_success"
	case errors.Is(err, httpx.ErrNonRoutable):
		return "probe_non_routable"
	default:
		return "probe_connect_failed"
	}
}
