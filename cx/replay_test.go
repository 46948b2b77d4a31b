package cx

import (
	"testing"
	"time"
)

func rk(i int) replayKey {
	var k replayKey
	k[0], k[1] = byte(i), byte(i>>8)
	return k
}

// TestCX_ReplayCacheBounds: entries expire after the TTL, the cache never
// exceeds its bound (oldest evicted first), and forget + re-add is not
// undone by the stale queue slot.
func TestCX_ReplayCacheBounds(t *testing.T) {
	now := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	c := newReplayCache(time.Minute, 4)
	for i := 0; i < 4; i++ {
		if !c.add(rk(i), now) {
			t.Fatalf("fresh key %d refused", i)
		}
	}
	if c.add(rk(2), now) {
		t.Fatal("replay accepted")
	}
	if !c.add(rk(4), now) || c.len() != 4 {
		t.Fatalf("bound: len %d", c.len())
	}
	if !c.add(rk(0), now) { // rk(0) was the oldest and got evicted
		t.Fatal("evicted key still remembered")
	}
	c.forget(rk(3))
	if !c.add(rk(3), now.Add(30*time.Second)) {
		t.Fatal("forgotten key refused")
	}
	// rk(3)'s first slot expires at +60s; the re-added entry lives to +90s.
	if c.add(rk(3), now.Add(70*time.Second)) {
		t.Fatal("stale slot deleted the re-added entry")
	}
	if !c.add(rk(3), now.Add(91*time.Second)) {
		t.Fatal("entry outlived its TTL")
	}
	// Many insertions over time keep memory proportional to live entries.
	c2 := newReplayCache(time.Second, 1<<20)
	for i := 0; i < 5000; i++ {
		c2.add(rk(i), now.Add(time.Duration(i)*time.Millisecond*10))
	}
	if c2.len() > 101 || len(c2.order)-c2.head > 101 || len(c2.order) > 3000 {
		t.Fatalf("live %d, queue %d (head %d)", c2.len(), len(c2.order), c2.head)
	}
}
