package route

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// fakeClock is a settable clock for the breakers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// iicp-semantics.md §7.1 across calls: consecutive failures open a
// target's circuit, an open circuit is skipped (the next target serves
// without touching it), after the open period one half-open probe goes
// through, and its success closes the circuit.
func TestBreakerOpensSkipsAndCloses(t *testing.T) {
	var healthy atomic.Bool
	flaky := newTaskNode(t, func(w http.ResponseWriter, c wire.Call) {
		if healthy.Load() {
			ok(w, c)
			return
		}
		failWith(wire.CodeUnavailable)(w, c)
	})
	good := newTaskNode(t, ok)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	ft := flaky.target("flaky")
	r := newRouter(t, []Finder{finder(ft, good.target("good"))}, WithBreaker(2, 30*time.Second), WithClock(clk.now))
	call := func() *Result {
		t.Helper()
		res, err := r.Call(context.Background(), testCall(), Query{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i := range 2 {
		if res := call(); res.NodeID != "good" || len(res.Tried) != 2 {
			t.Fatalf("call %d: %+v", i, res)
		}
	}
	if st := r.Breaker(ft); st != "open" {
		t.Fatalf("after 2 consecutive failures the circuit is %s", st)
	}
	before := flaky.count()
	if res := call(); res.NodeID != "good" || len(res.Tried) != 1 || flaky.count() != before {
		t.Fatalf("open circuit not skipped: %+v, flaky called %d more times", res, flaky.count()-before)
	}
	clk.add(31 * time.Second)
	if st := r.Breaker(ft); st != "half-open" {
		t.Fatalf("after the open period the circuit is %s", st)
	}
	healthy.Store(true)
	if res := call(); res.NodeID != "flaky" {
		t.Fatalf("half-open probe not sent: %+v", res)
	}
	if st := r.Breaker(ft); st != "closed" {
		t.Fatalf("a successful probe left the circuit %s", st)
	}
}

// Load signals and the caller's own problems do not count against a node:
// capacity_exceeded and a 4xx leave its circuit closed; a failed probe
// reopens it.
func TestBreakerIgnoresLoadSignalsAndClientErrors(t *testing.T) {
	full := newTaskNode(t, failWith(wire.CodeCapacityExceeded))
	picky := newTaskNode(t, failWith(wire.CodeValidationError))
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := newRouter(t, []Finder{finder(full.target("full"), picky.target("picky"))}, WithBreaker(1, time.Minute), WithClock(clk.now))
	for range 3 {
		_, err := r.Call(context.Background(), testCall(), Query{})
		var werr *wire.Error
		if !errors.As(err, &werr) || werr.Code != wire.CodeValidationError {
			t.Fatalf("err %v", err)
		}
	}
	if r.Breaker(full.target("full")) != "closed" || r.Breaker(picky.target("picky")) != "closed" {
		t.Fatal("a load signal or a client error opened a circuit")
	}
}
