package cx

import (
	"sync"
	"time"
)

// Replay cache defaults.
const (
	// DefaultReplayTTL is how long an opened envelope is remembered. The
	// envelope carries no timestamp, so a replay after the TTL is not
	// detected here; the engine's task_id idempotency covers that window.
	// Longer TTL catches more replays at more memory.
	DefaultReplayTTL = 15 * time.Minute
	// DefaultReplayEntries bounds the cache (~100 bytes an entry). When it
	// is full the oldest entry is evicted, trading a little replay
	// protection for never refusing honest traffic under load.
	DefaultReplayEntries = 100_000
)

// replayKey identifies one envelope: the consumer's ephemeral key and the
// nonce. A fresh encryption always changes both (CX-06), so a repeat of
// the pair is the same ciphertext sent again.
type replayKey [keySize + nonceSize]byte

func makeReplayKey(kem, nonce []byte) replayKey {
	var k replayKey
	copy(k[:keySize], kem)
	copy(k[keySize:], nonce)
	return k
}

// replayCache remembers opened envelopes for a TTL, bounded in entries.
// Entries expire in insertion order (the TTL is constant), so a FIFO queue
// is enough to prune and evict. Each insertion gets a sequence number; a
// queue slot only deletes the map entry it created, so forget + re-add
// cannot be undone by the stale slot.
type replayCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	seq   uint64
	seen  map[replayKey]replayEntry
	order []replaySlot // insertion order; live part starts at head
	head  int
}

type replayEntry struct {
	expiry time.Time
	seq    uint64
}

type replaySlot struct {
	key replayKey
	seq uint64
}

func newReplayCache(ttl time.Duration, maxEntries int) *replayCache {
	return &replayCache{ttl: ttl, max: maxEntries, seen: make(map[replayKey]replayEntry)}
}

// add records k at now; it reports false when k is already recorded and
// not yet expired (a replay).
func (c *replayCache) add(k replayKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(now)
	if e, ok := c.seen[k]; ok && now.Before(e.expiry) {
		return false
	}
	for len(c.seen) >= c.max && c.head < len(c.order) {
		c.dropHeadLocked()
	}
	c.seq++
	c.seen[k] = replayEntry{expiry: now.Add(c.ttl), seq: c.seq}
	c.order = append(c.order, replaySlot{key: k, seq: c.seq})
	return true
}

// forget removes k so the same envelope may be opened again (used when the
// task was not executed, so an honest client retry is not a replay).
func (c *replayCache) forget(k replayKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, k) // its queue slot becomes a no-op when it reaches the head
}

func (c *replayCache) pruneLocked(now time.Time) {
	for c.head < len(c.order) {
		s := c.order[c.head]
		if e, ok := c.seen[s.key]; ok && e.seq == s.seq && now.Before(e.expiry) {
			break
		}
		c.dropHeadLocked()
	}
	// Compact once the consumed prefix dominates, so memory stays
	// proportional to live entries.
	if c.head > 1024 && c.head*2 > len(c.order) {
		c.order = append([]replaySlot(nil), c.order[c.head:]...)
		c.head = 0
	}
}

func (c *replayCache) dropHeadLocked() {
	s := c.order[c.head]
	c.head++
	if e, ok := c.seen[s.key]; ok && e.seq == s.seq {
		delete(c.seen, s.key)
	}
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
