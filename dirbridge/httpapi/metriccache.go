package httpapi

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// maxCachedRoutes bounds routeCache: routes are routeLabel's six values
// and statuses the few the handlers write; past the bound a request goes
// to the vectors as before.
const maxCachedRoutes = 256

type routeStatus struct {
	route  string
	status int
}

// routeChildren are the per-request series of one route and status.
type routeChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// routeCache memoises the vectors' children per route and status, so a
// request skips two label hashes, two shared read locks and the status's
// strconv. A hit is an atomic load and a map read; a miss copies the small
// map. The vectors are never Reset, so a cached child stays the exported one.
type routeCache struct {
	m  *httpMetrics
	mu sync.Mutex
	c  atomic.Pointer[map[routeStatus]routeChildren]
}

func (rc *routeCache) get(route string, status int) routeChildren {
	k := routeStatus{route, status}
	if c := rc.c.Load(); c != nil {
		if v, ok := (*c)[k]; ok {
			return v
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	old := rc.c.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	v := routeChildren{
		requests: rc.m.requests.WithLabelValues(route, strconv.Itoa(status)),
		duration: rc.m.duration.WithLabelValues(route),
	}
	if old != nil && len(*old) >= maxCachedRoutes {
		return v
	}
	next := make(map[routeStatus]routeChildren, 1+len(mapOrEmpty(old)))
	for ok, ov := range mapOrEmpty(old) {
		next[ok] = ov
	}
	next[k] = v
	rc.c.Store(&next)
	return v
}

func mapOrEmpty(m *map[routeStatus]routeChildren) map[routeStatus]routeChildren {
	if m == nil {
		return nil
	}
	return *m
}
