package node

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

func TestAdmission_LimitAndHandOver(t *testing.T) {
	a := newAdmission(2)
	ctx := context.Background()
	for range 2 {
		if err := a.acquire(ctx, 0, 0); err != nil {
			t.Fatalf("acquire under limit: %v", err)
		}
	}
	if err := a.acquire(ctx, 0, 0); !errors.Is(err, errNoSlot) {
		t.Fatalf("over limit without wait: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- a.acquire(ctx, 5, 5*time.Second) }()
	waitFor(t, "waiter queued", func() bool { _, w, _ := a.snapshot(); return w == 1 })
	a.release() // handed to the waiter, not freed
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
	if act, w, _ := a.snapshot(); act != 2 || w != 0 {
		t.Fatalf("after hand-over active=%d waiting=%d, want 2,0", act, w)
	}
	a.release()
	a.release()
	if act, _, _ := a.snapshot(); act != 0 {
		t.Fatalf("active %d after all releases", act)
	}
}

func TestAdmission_WaitExpiresAndCancels(t *testing.T) {
	a := newAdmission(1)
	if err := a.acquire(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.acquire(context.Background(), 0, 10*time.Millisecond); !errors.Is(err, errNoSlot) {
		t.Fatalf("expired wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- a.acquire(ctx, 0, 5*time.Second) }()
	waitFor(t, "waiter queued", func() bool { _, w, _ := a.snapshot(); return w == 1 })
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if _, w, _ := a.snapshot(); w != 0 {
		t.Fatalf("cancelled waiter left in queue (%d)", w)
	}
	a.release()
	if act, _, _ := a.snapshot(); act != 0 {
		t.Fatalf("active %d", act)
	}
}

// Under churn with short waits, slots are never lost or duplicated.
func TestAdmission_StressNoLeak(t *testing.T) {
	const limit = 3
	a := newAdmission(limit)
	var mu sync.Mutex
	inside, peak := 0, 0
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if a.acquire(context.Background(), i%16, time.Duration(i%3)*time.Millisecond) != nil {
					continue
				}
				mu.Lock()
				inside++
				peak = max(peak, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				a.release()
			}
		}()
	}
	wg.Wait()
	if act, w, _ := a.snapshot(); act != 0 || w != 0 {
		t.Fatalf("after churn active=%d waiting=%d", act, w)
	}
	if peak > limit {
		t.Fatalf("peak %d > limit %d", peak, limit)
	}
}

func TestRankOf(t *testing.T) {
	// Priority dominates qos; absent values are normal / interactive.
	order := []struct{ prio, qos string }{
		{wire.PriorityCritical, wire.QoSBestEffort},
		{wire.PriorityHigh, wire.QoSRealtime},
		{wire.PriorityNormal, wire.QoSRealtime},
		{"", ""},
		{wire.PriorityNormal, wire.QoSBatch},
		{wire.PriorityLow, wire.QoSRealtime},
	}
	for i := 1; i < len(order); i++ {
		hi, lo := rankOf(order[i-1].prio, order[i-1].qos), rankOf(order[i].prio, order[i].qos)
		if hi <= lo {
			t.Errorf("rank(%v)=%d not above rank(%v)=%d", order[i-1], hi, order[i], lo)
		}
	}
}

func TestIdempotency_TTLCapCancel(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newIdempotency(time.Minute, 3)
	if _, ok := s.reserve("a", now); !ok {
		t.Fatal("fresh a refused")
	}
	if _, ok := s.reserve("a", now.Add(59*time.Second)); ok {
		t.Fatal("duplicate a inside TTL accepted")
	}
	if _, ok := s.reserve("a", now.Add(time.Minute)); !ok {
		t.Fatal("a refused after TTL")
	}
	// Cap 3: a fourth id evicts the oldest.
	t0 := now.Add(2 * time.Minute)
	for _, id := range []string{"b", "c", "d", "e"} {
		if _, ok := s.reserve(id, t0); !ok {
			t.Fatalf("fresh %s refused", id)
		}
	}
	if s.size() != 3 {
		t.Fatalf("size %d > cap", s.size())
	}
	if _, ok := s.reserve("e", t0); ok {
		t.Fatal("newest entry evicted instead of oldest")
	}
	// cancel frees the id; a stale generation cancels nothing.
	gen, _ := s.reserve("f", t0)
	s.cancel("f", gen)
	gen2, ok := s.reserve("f", t0)
	if !ok {
		t.Fatal("cancelled id not reusable")
	}
	s.cancel("f", gen)
	if _, ok := s.reserve("f", t0); ok {
		t.Fatalf("stale cancel (gen %d) removed live reservation %d", gen, gen2)
	}
}

func TestIdempotency_BoundedUnderLoad(t *testing.T) {
	s := newIdempotency(time.Hour, 1000)
	now := time.Unix(0, 0)
	for i := range 10_000 {
		id := newUUID()
		gen, ok := s.reserve(id, now)
		if !ok {
			t.Fatalf("collision at %d", i)
		}
		if i%2 == 0 {
			s.cancel(id, gen) // tombstones must not grow memory either
		}
	}
	if len(s.ring) > 1000 || s.size() > 1000 {
		t.Fatalf("ring %d, live %d exceed cap", len(s.ring), s.size())
	}
}

func BenchmarkIdempotencyReserve(b *testing.B) {
	s := newIdempotency(time.Minute, 100_000)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = newUUID()
	}
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		s.reserve(ids[i%len(ids)]+strconv.Itoa(i), now)
	}
}
