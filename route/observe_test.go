package route

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// TestTEL_ObserverSeesOutcomesNotPayloads: the router hands the observer
// one Observation per attempt another node answered with an outcome —
// timeout, success, and a backend failure in a second call — and none for a
// refusal (capacity_exceeded says nothing about execution). Observations
// carry node, status and latency: the payload is nowhere in them.
func TestTEL_ObserverSeesOutcomesNotPayloads(t *testing.T) {
	busy := newTaskNode(t, failWith(wire.CodeCapacityExceeded))
	slow := newTaskNode(t, failWith(wire.CodeTaskTimeout))
	broken := newTaskNode(t, failWith(wire.CodeBackendError))
	good := newTaskNode(t, ok)
	var mu sync.Mutex
	var seen []Observation
	observe := WithObserver(func(o Observation) { mu.Lock(); seen = append(seen, o); mu.Unlock() })
	q := Query{AllowPlaintext: true, QoS: wire.QoSBestEffort}
	r := newRouter(t, []Finder{finder(busy.target("busy"), slow.target("slow"), good.target("good"))}, observe)
	if res, err := r.Call(t.Context(), testCall(), q); err != nil || res.Response.Status != wire.StatusSuccess {
		t.Fatalf("call: %v", err)
	}
	// backend_error is final: a call of its own.
	r = newRouter(t, []Finder{finder(broken.target("broken"))}, observe)
	if _, err := r.Call(t.Context(), testCall(), q); err == nil {
		t.Fatal("backend_error answered as success")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"slow/timeout", "good/success", "broken/failure"}
	if len(seen) != len(want) {
		t.Fatalf("observations %+v, want %v", seen, want)
	}
	for i, o := range seen {
		if got := o.NodeID + "/" + o.Status; got != want[i] || o.Path != PathHTTP || o.Latency <= 0 || !o.QoSMet {
			t.Errorf("observation %d: %+v, want %s", i, o, want[i])
		}
		if bytes.Contains([]byte(fmt.Sprintf("%+v", o)), []byte("hi")) {
			t.Errorf("observation carries the payload: %+v", o)
		}
	}
}
