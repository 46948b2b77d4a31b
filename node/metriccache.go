package node

import (
	"sync"
	"sync/atomic"
)

// maxCachedChildren bounds a childCache. The label values on the task path
// come from closed sets (served intents or "other", RESPONSE statuses,
// catalogued outcome codes, transports, qos classes, auth methods), so real
// caches hold a few dozen entries; past the bound a lookup simply goes to
// the vector as before.
const maxCachedChildren = 1024

// childCache memoises a metric vector's children by label values, so each
// CALL skips the vector's label hashing and its read lock (whose shared
// counter every core writes). A hit is one atomic load and a map lookup; a
// miss copies the small map under a mutex, once per label combination.
// The vectors are never Reset or Delete'd, so a cached child stays the one
// the vector exports.
type childCache[K comparable, M any] struct {
	child func(K) M // the vector's WithLabelValues
	mu    sync.Mutex
	m     atomic.Pointer[map[K]M]
}

func newChildCache[K comparable, M any](child func(K) M) *childCache[K, M] {
	return &childCache[K, M]{child: child}
}

func (c *childCache[K, M]) get(k K) M {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		if len(*old) >= maxCachedChildren {
			return c.child(k)
		}
	}
	v := c.child(k)
	next := make(map[K]M, 1+lenOf(old))
	if old != nil {
		for ok, ov := range *old {
			next[ok] = ov
		}
	}
	next[k] = v
	c.m.Store(&next)
	return v
}

func lenOf[K comparable, M any](m *map[K]M) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
