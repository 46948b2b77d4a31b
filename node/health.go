package node

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// Health is the node's GET /iicp/health body (NODE-HEALTH-01..03): "ok"
// while every backend answers its probe, "degraded" otherwise. Probe results
// are cached for the health TTL so a polled endpoint cannot load the backend.
func (e *Engine) Health(ctx context.Context) wire.Health {
	active, _, limit := e.admit.snapshot()
	caps := e.resolver.Capabilities()
	h := wire.Health{
		Status:        "ok",
		NodeID:        e.auth.getNodeID(),
		Version:       e.cfg.Version,
		Load:          float64(active) / float64(limit),
		ActiveJobs:    active,
		MaxConcurrent: limit,
		Available:     active < limit,
		Models:        []string{},
		Intents:       []string{},
		UptimeS:       int64(e.set.now().Sub(e.started).Seconds()),
	}
	for _, c := range caps {
		h.Intents = append(h.Intents, c.Intent)
		for _, m := range c.Models {
			if !slices.Contains(h.Models, m) {
				h.Models = append(h.Models, m)
			}
		}
	}
	ok, name := e.health.get(ctx, e.set.now(), e.set.healthTTL, func(ctx context.Context) (bool, string) {
		return e.probeBackends(ctx, caps)
	})
	h.Backend = name
	if !ok {
		// The spec keeps 200 with "degraded" (NODE-HEALTH-01; directories
		// probe this for liveness); available tells routers not to send.
		h.Status = "degraded"
		h.Available = false
	}
	return h
}

// ReportBackendHealth records a backend health verdict made elsewhere (the
// node's backend monitor), so health and readiness change at once instead
// of when the cached probe expires.
func (e *Engine) ReportBackendHealth(ok bool) {
	name := ""
	for _, c := range e.resolver.Capabilities() {
		if be, _, err := e.resolver.Resolve(c.Intent, ""); err == nil && be != nil {
			name = be.Name()
			break
		}
	}
	e.health.set(e.set.now(), ok, name)
}

// probeBackends checks each distinct backend behind the served intents.
func (e *Engine) probeBackends(ctx context.Context, caps []wire.Capability) (bool, string) {
	var seen []backend.Backend
	var name string
	healthy := true
	for _, c := range caps {
		be, _, err := e.resolver.Resolve(c.Intent, "")
		if err != nil || be == nil {
			healthy = false
			continue
		}
		if containsBackend(seen, be) {
			continue
		}
		seen = append(seen, be)
		if name == "" {
			name = be.Name()
		}
		pctx, cancel := context.WithTimeout(ctx, DefaultHealthProbeTimeout)
		err = be.Check(pctx)
		cancel()
		if err != nil {
			healthy = false
			e.log.Warn("backend health probe failed", "backend", be.Name(), "error", err)
		}
	}
	return healthy && len(caps) > 0, name
}

// containsBackend compares only comparable dynamic types (pointers, in
// practice); others are treated as distinct and probed every time.
func containsBackend(seen []backend.Backend, be backend.Backend) bool {
	if !reflect.TypeOf(be).Comparable() {
		return false
	}
	for _, s := range seen {
		if reflect.TypeOf(s) == reflect.TypeOf(be) && s == be {
			return true
		}
	}
	return false
}

// healthCache serializes backend probes and reuses the last result for ttl.
type healthCache struct {
	mu   sync.Mutex
	at   time.Time
	ok   bool
	name string
}

func (c *healthCache) get(ctx context.Context, now time.Time, ttl time.Duration, probe func(context.Context) (bool, string)) (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < ttl {
		return c.ok, c.name
	}
	c.ok, c.name = probe(ctx)
	c.at = now
	return c.ok, c.name
}

func (c *healthCache) set(now time.Time, ok bool, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.ok, c.name = now, ok, name
}

// Stats is a point-in-time view for the admin/status endpoint.
type Stats struct {
	ActiveJobs    int               `json:"active_jobs"`
	Waiting       int               `json:"waiting"`
	MaxConcurrent int               `json:"max_concurrent"`
	Load          float64           `json:"load"`
	Served        map[string]uint64 `json:"served"` // outcome ("success" or error code) → count
	RememberedIDs int               `json:"remembered_task_ids"`
	UptimeS       int64             `json:"uptime_s"`
}

// Stats returns current load and served counts by outcome.
func (e *Engine) Stats() Stats {
	active, waiting, limit := e.admit.snapshot()
	s := Stats{
		ActiveJobs:    active,
		Waiting:       waiting,
		MaxConcurrent: limit,
		Load:          float64(active) / float64(limit),
		Served:        map[string]uint64{},
		RememberedIDs: e.idem.size(),
		UptimeS:       int64(e.set.now().Sub(e.started).Seconds()),
	}
	e.served.Range(func(k, v any) bool {
		s.Served[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return s
}
