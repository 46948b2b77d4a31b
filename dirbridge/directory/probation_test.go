package directory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// addNode registers a node with fixed traits: ip is its observed address,
// tasks its completed count, age how long ago it first registered, load
// orders it (lower load, higher score).
func (f *rankFixture) addNode(ip string, tasks int64, age time.Duration, load float64) string {
	f.t.Helper()
	now := f.clock.Now()
	id := newUUID()
	rec := &NodeRecord{NodeID: id, Endpoint: "https://" + id[:8] + ".example.net", Region: "eu-west",
		Capabilities: []wire.Capability{{Intent: chat, Models: []string{"m"}, MaxTokens: 1024}},
		Limits:       wire.Limits{MaxConcurrent: 4}, CIPLevel: "CIP-None", RegisteredAt: now.Add(-age), UpdatedAt: now}
	st := &nodeState{LastSeen: now, Available: true, Reputation: defaultReputation, Load: load, LoadReported: true,
		CompletedTasks: tasks, ObservedIP: ip}
	if err := f.s.store.apply(context.Background(), ChangeEvent{Kind: ChangeRegister, NodeID: id, Record: rec, At: now}, st); err != nil {
		f.t.Fatal(err)
	}
	f.ids = append(f.ids, id)
	return id
}

func (f *rankFixture) discover(qos string, limit int) (grad, prob int, got []scored) {
	now := f.clock.Now()
	got = f.s.candidates(&query{intent: chat, qos: qos}, now, limit, nil)
	for i, c := range got {
		if i > 0 && got[i-1].score < c.score {
			f.t.Errorf("DIR-DISC-02: answer not sorted by score")
		}
		if f.s.graduated(c.e.rec, c.st, now) {
			grad++
		} else {
			prob++
		}
	}
	return grad, prob, got
}

// TestDIR_DISC_Probation_Interactive: deployed SDKs always send
// qos=interactive; new nodes stay reachable without letting a burst of
// fresh registrations take over an answer.
func TestDIR_DISC_Probation_Interactive(t *testing.T) {
	f := newRankFixture(t, nil)
	// A young mesh: nobody has graduated. Five fresh nodes share one /24,
	// three sit in their own networks.
	for i := range 5 {
		f.addNode(fmt.Sprintf("203.0.113.%d", 10+i), 0, 0, float64(i)/10)
	}
	for i := range 3 {
		f.addNode(fmt.Sprintf("198.51.%d.7", 100+i), 0, 0, 0.5)
	}
	if g, p, got := f.discover(wire.QoSInteractive, 10); g != 0 || p != 4 || got[0].st.ObservedIP != "203.0.113.10" {
		t.Fatalf("young mesh: %d graduated, %d probationary (want 0, 4: one per network, the best of the crowded /24 first)", g, p)
	}
	if g, p, _ := f.discover(wire.QoSRealtime, 10); g+p != 0 {
		t.Errorf("realtime must stay closed to probation: %d", g+p)
	}
	if _, p, _ := f.discover(wire.QoSBatch, 10); p != 8 {
		t.Errorf("batch applies no probation rule: %d", p)
	}

	// Graduation needs the count AND the observed age.
	counted := f.addNode("192.0.2.1", 100, 0, 0)
	aged := f.addNode("192.0.2.2", 99, 2*time.Hour, 0)
	both := f.addNode("192.0.2.3", 100, time.Hour, 0)
	now := f.clock.Now()
	for id, want := range map[string]bool{counted: false, aged: false, both: true} {
		e := f.s.store.idx.get(id)
		if got := f.s.graduated(e.rec, e.state.Load(), now); got != want {
			t.Errorf("graduated(%s) = %v, want %v", id[:8], got, want)
		}
	}

	// Graduation by age alone, with no event: the ranking moves the node
	// before the next query reads it.
	f.clock.Advance(time.Hour)
	for _, id := range f.ids { // keep everyone live
		e := f.s.store.idx.get(id)
		f.s.applyHeartbeat(e, &heartbeatBody{NodeID: id}, f.clock.Now(), e.state.Load().ObservedIP)
	}
	if g, _, _ := f.discover(wire.QoSInteractive, 10); g != 2 {
		t.Errorf("after an hour counted and both are graduated: %d", g)
	}

	// A mature mesh: ten more graduated nodes. Probationary nodes keep
	// floor(limit × 0.2) exploration places and never push graduated nodes
	// out beyond that.
	for i := range 10 {
		f.addNode(fmt.Sprintf("100.64.%d.1", i), 500, 3*time.Hour, 0.9)
	}
	for limit, want := range map[int][2]int{10: {8, 2}, 5: {4, 1}, 4: {4, 0}, 1: {1, 0}, 50: {12, 5}} {
		if g, p, _ := f.discover(wire.QoSInteractive, limit); g != want[0] || p != want[1] {
			t.Errorf("limit %d: %d graduated + %d probationary, want %v", limit, g, p, want)
		}
	}
}

// TestDIR_DISC_Probation_Config: the rule's knobs switch its parts off.
func TestDIR_DISC_Probation_Config(t *testing.T) {
	f := newRankFixture(t, func(c *Config) {
		c.ProbationShare, c.ProbationPerNetwork, c.ProbationMinAge = -1, -1, -1
	})
	for i := range 12 {
		f.addNode(fmt.Sprintf("100.64.%d.1", i), 500, 0, 0.9) // graduated at once: no age rule
	}
	for i := range 3 {
		f.addNode(fmt.Sprintf("203.0.113.%d", i), 0, 0, 0) // one network, no cap
	}
	if g, p, _ := f.discover(wire.QoSInteractive, 10); g != 10 || p != 0 {
		t.Errorf("no exploration share: %d + %d", g, p)
	}
	if g, p, _ := f.discover(wire.QoSInteractive, 15); g != 12 || p != 3 {
		t.Errorf("no per-network cap: %d + %d", g, p)
	}
	if _, err := New(Config{StateDir: t.TempDir(), ProbationShare: 1.5}); err == nil {
		t.Error("ProbationShare > 1 accepted")
	}
}
