package directory

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// TestREP_01_02_03_OutcomeV2Fixture runs the spec's outcome-v2 vectors
// (fixtures/profiles/reputation-outcome-v2.json) through applyOutcome:
// success +0.01 whatever the latency, failure −0.05, the +0.10 positive cap
// per heartbeat, clamping at 0.
func TestREP_01_02_03_OutcomeV2Fixture(t *testing.T) {
	var fx struct {
		Model   string  `json:"reputation_model"`
		Initial float64 `json:"initial_score"`
		Cases   []struct {
			Name  string `json:"name"`
			Input struct {
				Score   *float64 `json:"score"`
				Success int64    `json:"tasks_success"`
				Failed  int64    `json:"tasks_failed"`
			} `json:"input"`
			Expected struct {
				Score *float64 `json:"score"`
			} `json:"expected"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "reputation-outcome-v2.json"), &fx); err != nil {
		t.Fatal(err)
	}
	if fx.Model != reputationModel || fx.Initial != defaultReputation {
		t.Fatalf("fixture model %q initial %v", fx.Model, fx.Initial)
	}
	ran := 0
	for _, c := range fx.Cases {
		if c.Input.Score == nil || c.Expected.Score == nil {
			continue // model-label and batch cases: TestREP_09_HeartbeatReputation
		}
		st := nodeState{Reputation: *c.Input.Score}
		applyOutcome(&st, outcome{success: c.Input.Success, failed: c.Input.Failed}, time.Unix(1e9, 0))
		if st.Reputation != *c.Expected.Score {
			t.Errorf("%s: score %v, want %v", c.Name, st.Reputation, *c.Expected.Score)
		}
		ran++
	}
	if ran < 8 {
		t.Fatalf("only %d numeric vectors ran", ran)
	}
}

// TestREP_04_HourlyVelocity follows fixtures/profiles/
// reputation-hourly-velocity-v0.json: concurrent heartbeats share one
// hourly budget, 3599 s stays in the window, 3600 s opens a new one, the
// budget survives a restart and a negative delta neither consumes nor
// restores it.
func TestREP_04_HourlyVelocity(t *testing.T) {
	var fx struct {
		Inputs struct {
			Workers      int     `json:"workers"`
			Success      int64   `json:"tasks_success_per_worker"`
			NegAfterLoad float64 `json:"negative_delta_after_reload"`
		} `json:"inputs"`
		Expected struct {
			Score      float64 `json:"concurrent_score"`
			Gain       float64 `json:"concurrent_hourly_gain"`
			Tasks      int64   `json:"concurrent_tasks_total"`
			SameAge    int     `json:"same_window_age_seconds"`
			SameScore  float64 `json:"same_window_score"`
			NextAge    int     `json:"next_window_age_seconds"`
			NextScore  float64 `json:"next_window_score_after_first_positive"`
			NextGain   float64 `json:"next_window_hourly_gain_after_first_positive"`
			FinalScore float64 `json:"final_score_after_reload_and_negative"`
			FinalGain  float64 `json:"final_hourly_gain"`
		} `json:"expected"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "reputation-hourly-velocity-v0.json"), &fx); err != nil {
		t.Fatal(err)
	}
	f := newRankFixture(t, nil)
	id := f.addNode("192.0.2.1", 0, 0, 0)
	start := f.clock.Now()
	hb := func(success, failed int64) *nodeState {
		e := f.s.store.idx.get(id)
		b := heartbeatBody{NodeID: id, Metrics: &heartbeatMetrics{TasksSuccess: success, TasksFailed: failed}}
		if _, _, ok := f.s.applyHeartbeat(e, &b, f.clock.Now(), "192.0.2.1"); !ok {
			t.Error("heartbeat CAS exhausted") // may run off the test goroutine
		}
		return e.state.Load()
	}
	var wg sync.WaitGroup
	for range fx.Inputs.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); hb(fx.Inputs.Success, 0) }()
	}
	wg.Wait()
	st := f.s.store.idx.get(id).state.Load()
	if st.Reputation != fx.Expected.Score || st.RepHourlyGain != fx.Expected.Gain || st.CompletedTasks != fx.Expected.Tasks {
		t.Fatalf("concurrent: score %v gain %v tasks %d", st.Reputation, st.RepHourlyGain, st.CompletedTasks)
	}
	f.clock.Advance(time.Duration(fx.Expected.SameAge) * time.Second)
	if st := hb(10, 0); st.Reputation != fx.Expected.SameScore {
		t.Errorf("3599 s: score %v", st.Reputation)
	}
	f.clock.Advance(start.Add(time.Duration(fx.Expected.NextAge) * time.Second).Sub(f.clock.Now()))
	if st := hb(10, 0); st.Reputation != fx.Expected.NextScore || st.RepHourlyGain != fx.Expected.NextGain {
		t.Errorf("3600 s: score %v gain %v", st.Reputation, st.RepHourlyGain)
	}
	hb(10, 0) // spends the rest of the new window's budget: 0.9, gain 0.2

	// Restart: the budget and the score come back from SQLite.
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := New(f.s.cfg, WithClock(f.clock.Now), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	f.s = s2
	fails := int64(-fx.Inputs.NegAfterLoad / -repFailureDelta)
	if st := hb(10, 0); st.Reputation != 0.9 {
		t.Errorf("after reload the spent budget must still hold: %v", st.Reputation)
	}
	if st := hb(0, fails); st.Reputation != fx.Expected.FinalScore || st.RepHourlyGain != fx.Expected.FinalGain {
		t.Errorf("after reload and a failure: score %v gain %v", st.Reputation, st.RepHourlyGain)
	}
}

// TestREP_09_HeartbeatReputation: PONG labels the model and epoch, a
// repeated batch is acknowledged without being reapplied, an implausible
// success count is clamped, elapsed time alone never moves the score, and
// sustained success opens qos=realtime (reputation ≥ 0.8) after the
// hourly ceiling allows it.
func TestREP_09_HeartbeatReputation(t *testing.T) {
	h := startHarness(t, nil)
	id, tok := h.register(h.regBody("node1"))
	batch := map[string]any{"metrics": map[string]any{"tasks_success": 5, "tasks_failed": 0}, "metrics_batch_id": "b-1"}
	first := h.heartbeat(id, tok, batch).json(t)
	again := h.heartbeat(id, tok, batch).json(t)
	if first["reputation_model"] != reputationModel || first["reputation_epoch"] == "" || first["reputation_epoch"] != again["reputation_epoch"] {
		t.Fatalf("model/epoch: %v / %v", first, again)
	}
	if first["reputation_score"] != 0.55 || again["reputation_score"] != 0.55 || again["metrics_batch_accepted"] != "b-1" {
		t.Fatalf("REP-09 duplicate batch: %v then %v", first["reputation_score"], again)
	}
	// 4 slots × 30 s × 10/s = 1200 tasks at most per heartbeat.
	h.heartbeat(id, tok, map[string]any{"metrics": map[string]any{"tasks_success": 1_000_000}, "metrics_batch_id": "b-2"})
	m := h.do(http.MethodGet, "/v1/node/"+id, nil, nil).json(t)
	if m["completed_tasks_count"].(float64) != 1205 {
		t.Errorf("success tally not clamped: %v", m["completed_tasks_count"])
	}
	if m["reputation_model"] != reputationModel || m["reputation_score"].(float64) != 0.65 {
		t.Errorf("after the per-heartbeat cap: %v %v", m["reputation_model"], m["reputation_score"])
	}
	// Silence changes freshness, never the outcome score.
	h.clock.Advance(10 * time.Minute)
	if r := h.heartbeat(id, tok, nil).json(t)["reputation_score"]; r != 0.65 {
		t.Errorf("elapsed time moved the score: %v", r)
	}
	if _, n := h.discover("intent=" + chat + "&qos=" + wire.QoSRealtime); len(n) != 0 {
		t.Fatalf("realtime before reputation 0.8: %v", n)
	}
	h.clock.Advance(time.Hour)
	h.heartbeat(id, tok, map[string]any{"metrics": map[string]any{"tasks_success": 10}, "metrics_batch_id": "b-3"})
	r := h.heartbeat(id, tok, map[string]any{"metrics": map[string]any{"tasks_success": 10}, "metrics_batch_id": "b-4"}).json(t)
	if r["reputation_score"] != 0.85 {
		t.Fatalf("next window: %v", r["reputation_score"])
	}
	if _, n := h.discover("intent=" + chat + "&qos=" + wire.QoSRealtime); len(n) != 1 || n[0]["reputation_tier"] != "gold" {
		t.Fatalf("realtime after reputation 0.85 and 1000+ tasks: %v", n)
	}
}
