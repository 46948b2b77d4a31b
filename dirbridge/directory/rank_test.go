package directory

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// rankFixture is a directory without a listener, populated through the
// store's write path, for exercising candidate selection directly.
type rankFixture struct {
	t     *testing.T
	s     *Server
	clock *fakeClock
	rnd   *rand.Rand
	ids   []string
}

func newRankFixture(t *testing.T, mutate func(*Config)) *rankFixture {
	t.Helper()
	clock := newFakeClock()
	cfg := Config{StateDir: t.TempDir(), Dev: true, BcryptCost: 4}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, WithClock(clock.Now), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &rankFixture{t: t, s: s, clock: clock, rnd: rand.New(rand.NewPCG(1, 2))}
}

var rankRegions = []string{"eu-west", "eu-central", "us-west", "EU-WEST", "ap-south"}

// register adds (or, with id set, re-registers) a node with random traits.
func (f *rankFixture) register(id string, intents ...string) string {
	f.t.Helper()
	r, now := f.rnd, f.clock.Now()
	if id == "" {
		id = newUUID()
		f.ids = append(f.ids, id)
	}
	var caps []wire.Capability
	for _, in := range intents {
		c := wire.Capability{Intent: in, Models: []string{"m"}, MaxTokens: 1024}
		if r.IntN(4) == 0 {
			c.InputModalities = []string{"text", "image"}
		}
		caps = append(caps, c)
	}
	rec := &NodeRecord{NodeID: id, Endpoint: fmt.Sprintf("https://n%d.example.net", r.IntN(1e6)),
		Region: rankRegions[r.IntN(len(rankRegions))], Capabilities: caps,
		Limits: wire.Limits{MaxConcurrent: 1 + r.IntN(20)}, CIPLevel: "CIP-None",
		AllowRemoteInference: r.IntN(3) == 0, RegisteredAt: now.Add(-time.Duration(r.IntN(7200)) * time.Second), UpdatedAt: now}
	if r.IntN(5) == 0 {
		rec.Availability = []wire.AvailabilityWindow{{Start: "11:30", End: "12:30"}}
	}
	st := &nodeState{LastSeen: now, Available: r.IntN(10) != 0, Reputation: float64(r.IntN(11)) / 10,
		CompletedTasks: int64(r.IntN(3000)), ObservedIP: fmt.Sprintf("198.51.%d.%d", r.IntN(4), 1+r.IntN(200))}
	if r.IntN(2) == 0 {
		st.Load, st.LoadReported = float64(r.IntN(5))/4, true
	} else {
		st.ActiveJobs = r.IntN(4)
	}
	ev := ChangeEvent{Kind: ChangeRegister, NodeID: id, Record: rec, At: now}
	if err := f.s.store.apply(context.Background(), ev, st); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// heartbeat sends a random PING for a random node through applyHeartbeat.
func (f *rankFixture) heartbeat() {
	e := f.s.store.idx.get(f.ids[f.rnd.IntN(len(f.ids))])
	if e == nil {
		return
	}
	load, avail := float64(f.rnd.IntN(5))/4, f.rnd.IntN(8) != 0
	b := heartbeatBody{NodeID: e.rec.NodeID, Load: &load, Available: &avail}
	if f.rnd.IntN(3) == 0 {
		b.Metrics = &heartbeatMetrics{TasksSuccess: int64(f.rnd.IntN(50)), TasksFailed: int64(f.rnd.IntN(2))}
		b.MetricsBatchID = fmt.Sprintf("b%d", f.rnd.Int())
	}
	if _, _, ok := f.s.applyHeartbeat(e, &b, f.clock.Now(), fmt.Sprintf("198.51.%d.9", f.rnd.IntN(4))); !ok {
		f.t.Fatal("heartbeat CAS exhausted without contention")
	}
}

// fullScan is the reference: every registered node, filtered and scored
// from its current state, sorted, probation applied by its definition.
func (f *rankFixture) fullScan(q *query, now time.Time, k int) []scored {
	var grad, prob []scored
	f.s.store.idx.forAll(func(e *entry) {
		st := e.state.Load()
		if !e.modalities.has(q.intent) || !f.s.eligible(q, e, st, now) {
			return
		}
		if q.qos == wire.QoSRealtime && !f.s.passesRealtime(st) {
			return
		}
		if sc := score(e.rec, st, q.region, now); sc >= minScore && sc >= q.minScore {
			if f.s.graduated(e.rec, st, now) {
				grad = append(grad, scored{e: e, st: st, score: sc})
			} else {
				prob = append(prob, scored{e: e, st: st, score: sc})
			}
		}
	})
	sortScored := func(l []scored) {
		slices.SortFunc(l, func(a, b scored) int {
			if better(a, b) {
				return -1
			}
			return 1
		})
	}
	sortScored(grad)
	sortScored(prob)
	switch q.qos {
	case wire.QoSRealtime:
		return grad[:min(k, len(grad))]
	case wire.QoSInteractive:
		perNet := map[string]int{}
		var capped []scored
		for _, c := range prob {
			n := networkKey(c.e.rec, c.st)
			if cp := f.s.cfg.ProbationPerNetwork; cp > 0 && perNet[n] >= cp {
				continue
			}
			perNet[n]++
			capped = append(capped, c)
		}
		return f.s.mergeProbation(grad[:min(k, len(grad))], capped[:min(k, len(capped))], k)
	}
	all := append(grad, prob...)
	sortScored(all)
	return all[:min(k, len(all))]
}

func ids(list []scored) []string {
	out := make([]string, len(list))
	for i, c := range list {
		out[i] = fmt.Sprintf("%s@%.4f", c.e.rec.NodeID[:8], c.score)
	}
	return out
}

// TestDIR_DISC_02_RankingMatchesFullScan: the incrementally maintained
// rankings with early termination return exactly what scoring every node
// would, through heartbeats, re-registrations, deregistrations, dormancy,
// availability windows and every query filter.
func TestDIR_DISC_02_RankingMatchesFullScan(t *testing.T) {
	f := newRankFixture(t, nil)
	intents := []string{chat, "urn:iicp:intent:llm:embedding:v1"}
	for i := range 150 {
		f.register("", intents[:1+i%2]...)
	}
	for round := range 1500 {
		switch op := f.rnd.IntN(20); {
		case op < 12:
			f.heartbeat()
		case op < 14:
			f.register(f.ids[f.rnd.IntN(len(f.ids))], intents[f.rnd.IntN(2):]...)
		case op < 15:
			id := f.ids[f.rnd.IntN(len(f.ids))]
			if err := f.s.store.apply(context.Background(), ChangeEvent{Kind: ChangeDeregister, NodeID: id, At: f.clock.Now()}, nil); err != nil {
				t.Fatal(err)
			}
		case op < 16:
			f.register("", intents[f.rnd.IntN(2)])
		case op < 17:
			f.clock.Advance(time.Duration(f.rnd.IntN(40)) * time.Second) // expiry and window edges
			f.s.markDormant(f.clock.Now())
		}
		q := query{intent: intents[f.rnd.IntN(2)], qos: []string{"", wire.QoSBatch, wire.QoSRealtime, wire.QoSInteractive}[f.rnd.IntN(4)]}
		if f.rnd.IntN(2) == 0 {
			q.region = rankRegions[f.rnd.IntN(len(rankRegions))]
		}
		if f.rnd.IntN(4) == 0 {
			q.modality = "image"
		}
		q.cipCapable = f.rnd.IntN(4) == 0
		q.minReputation = float64(f.rnd.IntN(3)) / 4
		k := 1 + f.rnd.IntN(12)
		now := f.clock.Now()
		got, want := f.s.candidates(&q, now, k, nil), f.fullScan(&q, now, k)
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("round %d query %+v k=%d:\n got %v\nwant %v", round, q, k, ids(got), ids(want))
		}
	}
}

// TestDIR_DISC_08_CacheInvalidation: discover serves from incrementally
// kept rankings and cached node encodings; every change that affects an
// answer shows in the very next discover (nothing waits for a TTL):
// registration, load change, re-registration, expiry, revival, explicit
// unavailability and deregistration.
func TestDIR_DISC_08_CacheInvalidation(t *testing.T) {
	h := startHarness(t, nil)
	nodeIDs := func() []string {
		_, nodes := h.discover("intent=" + chat)
		var out []string
		for _, n := range nodes {
			out = append(out, fmt.Sprintf("%s@%v", n["node_id"].(string)[:8], n["load"]))
		}
		return out
	}
	want := func(step string, exp ...string) {
		t.Helper()
		if got := nodeIDs(); !slices.Equal(got, exp) {
			t.Fatalf("%s: got %v, want %v", step, got, exp)
		}
	}
	a, atok := h.register(h.regBody("node1"))
	want("first registration", a[:8]+"@0")
	b, btok := h.register(h.regBody("node2"))
	h.heartbeat(a, atok, map[string]any{"load": 0.5})
	h.heartbeat(b, btok, map[string]any{"load": 0.25})
	want("registration and load change", b[:8]+"@0.25", a[:8]+"@0.5")
	h.heartbeat(a, atok, map[string]any{"load": 0})
	want("load change re-orders and re-encodes", a[:8]+"@0", b[:8]+"@0.25")

	body := h.regBody("node2")
	body["node_id"], body["current_node_token"] = b, btok
	body["capabilities"] = []any{map[string]any{"intent": "urn:iicp:intent:llm:embedding:v1", "models": []string{"e"}, "max_tokens": 512}}
	r := h.do(http.MethodPost, "/v1/register", body, nil)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("re-register: %d %s", r.status, r.body)
	}
	btok = r.json(t)["node_token"].(string)
	want("re-registration moved node2 to another intent", a[:8]+"@0")
	if _, n := h.discover("intent=urn:iicp:intent:llm:embedding:v1"); len(n) != 1 || n[0]["node_id"] != b {
		t.Fatalf("re-registered node missing from its new intent: %v", n)
	}

	h.clock.Advance(91 * time.Second)
	want("expiry")
	h.heartbeat(a, atok, nil)
	want("revival", a[:8]+"@0")
	h.heartbeat(a, atok, map[string]any{"available": false})
	want("unavailable")
	h.heartbeat(a, atok, nil)
	want("available again", a[:8]+"@0")
	if r := h.do(http.MethodDelete, "/v1/register", nil, bearerHdr(atok)); r.status != http.StatusOK {
		t.Fatalf("deregister: %d %s", r.status, r.body)
	}
	want("deregistration")
}

// TestDIR_DISC_02_DormantNodesAreNotWalked: nodes no query can return
// (dormant after stale_after, unavailable) leave the walked lists, so a
// discover over a directory where most registered nodes are offline
// evaluates only the live ones; a heartbeat brings a node back at once.
func TestDIR_DISC_02_DormantNodesAreNotWalked(t *testing.T) {
	f := newRankFixture(t, nil)
	for range 200 {
		f.register("", chat)
	}
	f.clock.Advance(f.s.cfg.StaleAfter + time.Second)
	beat := func(id string) {
		t.Helper()
		e := f.s.store.idx.get(id)
		load, avail := 0.25, true
		if _, _, ok := f.s.applyHeartbeat(e, &heartbeatBody{NodeID: id, Load: &load, Available: &avail}, f.clock.Now(), "198.51.100.9"); !ok {
			t.Fatal("heartbeat CAS exhausted without contention")
		}
	}
	live := f.ids[:10]
	for _, id := range live {
		beat(id)
	}
	f.s.markDormant(f.clock.Now())
	walked := func() (n int, got []string) {
		r := f.s.store.idx.ranking(chat)
		now := f.clock.Now()
		rq := f.s.store.idx.policy.regions.query("")
		out := r.top(topSpec{k: 5, lists: []int{classGraduated, classProbation}, eval: func(it *rankItem) (float64, bool) {
			n++
			return it.score(&rq, now), f.s.eligible(&query{intent: chat}, it.e, it.st, now)
		}})
		for _, c := range out {
			got = append(got, c.e.rec.NodeID)
		}
		return n, got
	}
	if n, got := walked(); n > len(live) || len(got) != 5 {
		t.Fatalf("walked %d items for 5 answers with %d live nodes of 200 (answers %d)", n, len(live), len(got))
	}
	for _, c := range f.s.candidates(&query{intent: chat}, f.clock.Now(), 50, nil) {
		if !slices.Contains(live, c.e.rec.NodeID) {
			t.Fatalf("discover returned dormant node %s", c.e.rec.NodeID)
		}
	}
	back := f.ids[150]
	beat(back)
	found := false
	for _, c := range f.s.candidates(&query{intent: chat}, f.clock.Now(), 50, nil) {
		found = found || c.e.rec.NodeID == back
	}
	if !found {
		t.Fatal("a dormant node that heartbeats again is not discoverable at once")
	}
}

// TestDIR_REG_WalksDoNotBlockWriters: a walk over every node (dormancy,
// probes, operator counts) does not hold the index lock while it runs, so
// a REGISTER — and every heartbeat and discover queued behind a waiting
// writer — never waits for it.
func TestDIR_REG_WalksDoNotBlockWriters(t *testing.T) {
	f := newRankFixture(t, nil)
	for range 20 {
		f.register("", chat)
	}
	inWalk, release := make(chan struct{}), make(chan struct{})
	walked := make(chan struct{})
	go func() {
		defer close(walked)
		first := true
		f.s.store.idx.forAll(func(*entry) {
			if first {
				first = false
				close(inWalk)
				<-release
			}
		})
	}()
	<-inWalk
	registered := make(chan struct{})
	go func() { f.register("", chat); close(registered) }()
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Error("REGISTER waited for a running walk")
	}
	close(release)
	<-walked
	<-registered
}
