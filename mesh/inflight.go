package mesh

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// callStreamsPerPeer caps this node's task streams in flight to one peer.
// The serving host admits taskStreamsPerPeer (twice this) from one peer,
// so a burst of callers waits here, briefly and in order, instead of
// meeting a stream reset (0x1002) there. It trades a little queueing at
// the caller for never losing a call to the remote resource manager.
const callStreamsPerPeer = 128

// inflight is a per-peer counting semaphore for outbound task streams.
// An entry lives only while some call holds or waits for a slot, so the
// map is bounded by the calls in flight, not by the peers ever called.
type inflight struct {
	limit int

	mu sync.Mutex
	m  map[peer.ID]*peerSlots
	// spare is the last dropped entry, kept for the next peer: one caller
	// calling one peer at a time would otherwise make and drop an entry
	// (and its semaphore) per call.
	spare *peerSlots
}

type peerSlots struct {
	sem   chan struct{}
	users int // holders and waiters; the entry is dropped at zero
}

func newInflight(limit int) *inflight {
	return &inflight{limit: limit, m: make(map[peer.ID]*peerSlots)}
}

// acquire takes a slot for p, waiting until one is free or ctx ends. On
// success the caller must call release(p) once.
func (f *inflight) acquire(ctx context.Context, p peer.ID) error {
	f.mu.Lock()
	ps, ok := f.m[p]
	if !ok {
		if ps, f.spare = f.spare, nil; ps == nil {
			ps = &peerSlots{sem: make(chan struct{}, f.limit)}
		}
		f.m[p] = ps
	}
	ps.users++
	f.mu.Unlock()
	select {
	case ps.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case ps.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		f.leave(p, ps)
		return ctx.Err()
	}
}

// release frees the slot taken by acquire.
func (f *inflight) release(p peer.ID) {
	f.mu.Lock()
	ps := f.m[p]
	f.mu.Unlock()
	if ps == nil {
		return // release without acquire: a bug, but not worth a panic
	}
	<-ps.sem
	f.leave(p, ps)
}

func (f *inflight) leave(p peer.ID, ps *peerSlots) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps.users--
	if ps.users == 0 {
		// No holder and no waiter: the semaphore is empty, fit for reuse.
		delete(f.m, p)
		f.spare = ps
	}
}

// inUse is the number of slots held for p (tests).
func (f *inflight) inUse(p peer.ID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ps, ok := f.m[p]; ok {
		return len(ps.sem)
	}
	return 0
}
