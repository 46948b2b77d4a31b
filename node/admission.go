package node

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// errNoSlot: every slot stayed busy for the whole allowed wait.
var errNoSlot = errors.New("no concurrency slot")

// admission enforces max_concurrent (TASK-3) with a priority hand-over queue
// rather than a plain semaphore: when a slot frees while CALLs are waiting,
// it goes straight to the most urgent waiter (iicp-core.md §3.1
// constraints.priority: "higher priority tasks scheduled ahead of lower").
//
// Invariant: waiters is non-empty only while active == limit, because
// release hands a slot to a waiter instead of freeing it. So a new CALL can
// never overtake a waiter by finding a free slot.
type admission struct {
	mu      sync.Mutex
	limit   int
	active  int
	seq     uint64
	waiters waitHeap
}

func newAdmission(limit int) *admission { return &admission{limit: limit} }

// waiter is one CALL waiting for a slot. granted is set under admission.mu
// when release hands it the slot; ch is then signalled.
type waiter struct {
	rank    int // higher is more urgent
	seq     uint64
	index   int // position in the heap, -1 once removed
	granted bool
	ch      chan struct{}
}

// acquire takes a slot, waiting at most wait (0: refuse immediately) and
// never past ctx. The caller must call release exactly once on success.
func (a *admission) acquire(ctx context.Context, rank int, wait time.Duration) error {
	a.mu.Lock()
	if a.active < a.limit {
		a.active++
		a.mu.Unlock()
		return nil
	}
	if wait <= 0 {
		a.mu.Unlock()
		return errNoSlot
	}
	a.seq++
	w := &waiter{rank: rank, seq: a.seq, ch: make(chan struct{}, 1)}
	heap.Push(&a.waiters, w)
	a.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var cause error
	select {
	case <-w.ch:
		return nil
	case <-t.C:
		cause = errNoSlot
	case <-ctx.Done():
		cause = ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.granted {
		// release handed us the slot while we were giving up: keep it, the
		// caller is about to run anyway and giving it back would cost a hand-over.
		return nil
	}
	heap.Remove(&a.waiters, w.index)
	return cause
}

// release frees a slot, or hands it to the most urgent waiter.
func (a *admission) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiters.Len() > 0 {
		w := heap.Pop(&a.waiters).(*waiter)
		w.granted = true
		w.ch <- struct{}{}
		return
	}
	a.active--
}

// snapshot returns active slots, waiting CALLs and the limit.
func (a *admission) snapshot() (active, waiting, limit int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.active, a.waiters.Len(), a.limit
}

// rankOf orders waiters: priority first, then qos class as the tie-breaker
// (iicp-semantics.md §2.1: adapters SHOULD prioritise by qos under contention).
func rankOf(priority, qos string) int {
	p := 1 // normal, also when absent
	switch priority {
	case wire.PriorityLow:
		p = 0
	case wire.PriorityHigh:
		p = 2
	case wire.PriorityCritical:
		p = 3
	}
	q := 2 // interactive, the schema default
	switch qos {
	case wire.QoSBestEffort:
		q = 0
	case wire.QoSBatch:
		q = 1
	case wire.QoSRealtime:
		q = 3
	}
	return p*4 + q
}

// waitHeap is a max-heap on rank, FIFO within a rank.
type waitHeap []*waiter

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank > h[j].rank
	}
	return h[i].seq < h[j].seq
}
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waitHeap) Pop() any {
	old := *h
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.index = -1
	*h = old[:n-1]
	return w
}
