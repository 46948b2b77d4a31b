package dirclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// realDirectory starts a real directory (dev mode, SQLite in a temp dir)
// and a node /iicp/health endpoint its liveness probe can reach.
func realDirectory(t *testing.T) (dirURL, nodeEndpoint string) {
	t.Helper()
	d, err := directory.New(directory.Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Dev: true, BcryptCost: 4,
		HeartbeatInterval: 100 * time.Millisecond}, directory.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(func() {
		node.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("directory: %v", err)
		}
	})
	return "http://" + d.Addr().String(), node.URL
}

// pongDropper proxies to the directory and, while armed, replaces the
// answer to a metrics-carrying heartbeat with a 502 after the directory
// has processed it: the lost-PONG case a retried batch exists for.
type pongDropper struct {
	proxy *httputil.ReverseProxy
	drops atomic.Int32
	// down answers deregistrations 503, as if the node died without one.
	down atomic.Bool
	mu   sync.Mutex
	ids  []string // metrics_batch_id of every heartbeat seen
}

func (p *pongDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/deregister" && p.down.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != "/v1/heartbeat" {
		p.proxy.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var hb wire.Heartbeat
	_ = json.Unmarshal(body, &hb)
	p.mu.Lock()
	p.ids = append(p.ids, hb.MetricsBatchID)
	p.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if hb.Metrics != nil && hb.Metrics.TasksSuccess > 0 && p.drops.Add(-1) >= 0 {
		rec := httptest.NewRecorder()
		p.proxy.ServeHTTP(rec, r)
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

// duplicateBatchVector is the "duplicate_batch" case of the spec's
// fixtures/profiles/reputation-outcome-v2.json.
type duplicateBatchVector struct {
	Input struct {
		Score      float64 `json:"score"`
		Deliveries int     `json:"deliveries"`
		Success    int64   `json:"tasks_success"`
	} `json:"input"`
	Expected struct {
		Score        float64 `json:"score"`
		Applied      int64   `json:"applied_batches"`
		Acknowledged int     `json:"acknowledged_deliveries"`
	} `json:"expected"`
}

func loadDuplicateBatch(t *testing.T) duplicateBatchVector {
	t.Helper()
	var fx struct {
		Cases []struct {
			Name string `json:"name"`
			duplicateBatchVector
		} `json:"cases"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "reputation-outcome-v2.json"), &fx); err != nil {
		t.Fatal(err)
	}
	for _, c := range fx.Cases {
		if c.Name == "duplicate_batch" {
			return c.duplicateBatchVector
		}
	}
	t.Fatal("fixture has no duplicate_batch case")
	return duplicateBatchVector{}
}

// TestREP_09_SessionRetriesBatchOnce runs the outcome-v2 fixture's
// duplicate_batch vector end to end: a node's Session sends its outcome
// counters in a metrics batch to a real directory; the PONG of the first
// delivery is lost (after the directory applied it), so the Session
// delivers the same batch again (same metrics_batch_id, same counts); the
// directory acknowledges both deliveries and applies the batch once. The
// node reads back reputation_score and metrics_batch_accepted; later
// outcomes go in a new batch.
func TestREP_09_SessionRetriesBatchOnce(t *testing.T) {
	fx := loadDuplicateBatch(t)
	dirURL, endpoint := realDirectory(t)
	target, _ := url.Parse(dirURL)
	drop := &pongDropper{proxy: httputil.NewSingleHostReverseProxy(target)}
	front := httptest.NewServer(drop)
	t.Cleanup(front.Close)

	var success, failed atomic.Int64
	c, err := New(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(SessionConfig{
		Client: c,
		Registration: func() wire.RegisterRequest {
			return wire.RegisterRequest{NodeID: testNodeID, Endpoint: endpoint, Region: "local",
				Capabilities: []wire.Capability{{Intent: wire.IntentChat, Models: []string{"m"}, MaxTokens: 512}}, Limits: wire.Limits{MaxConcurrent: 2}}
		},
		Outcomes: func() Outcomes {
			return Outcomes{Success: success.Load(), Failed: failed.Load(), SuccessLatencyMs: 10 * success.Load()}
		},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Jitter: func() float64 { return 0.5 }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	drop.drops.Store(int32(fx.Input.Deliveries - 1))
	success.Store(fx.Input.Success)
	stop := run(t, s)
	defer stop()
	testutil.WaitFor(t, 10*time.Second, "first batch acknowledged", func() bool { return s.Status().ReportedSuccess == fx.Input.Success })
	st := s.Status()
	if st.Score == nil || *st.Score != fx.Expected.Score || st.Model != "outcome-v2" || st.BatchAccepted == "" || st.PendingBatch != "" {
		t.Fatalf("after the retried batch: %+v", st.Reputation)
	}
	drop.mu.Lock()
	ids := append([]string(nil), drop.ids...)
	drop.mu.Unlock()
	if n := countOf(ids, st.BatchAccepted); n != fx.Expected.Acknowledged {
		t.Fatalf("batch %s delivered %d times, want %d (lost PONG, one retry): %v", st.BatchAccepted, n, fx.Expected.Acknowledged, ids)
	}
	node := nodeDetail(t, dirURL)
	if node["completed_tasks_count"] != float64(fx.Expected.Applied*fx.Input.Success) || node["reputation_score"] != fx.Expected.Score {
		t.Fatalf("REP-09: directory applied the retried batch more than once: %v", node)
	}

	first := st.BatchAccepted
	success.Add(2)
	failed.Add(1)
	testutil.WaitFor(t, 10*time.Second, "second batch acknowledged", func() bool { return s.Status().ReportedFailed == 1 })
	st = s.Status()
	want := fx.Expected.Score + 2*0.01 - 0.05 // §11.2: +0.01 per success, −0.05 per failure
	if st.BatchAccepted == first || st.ReportedSuccess != fx.Input.Success+2 || math.Abs(*st.Score-want) > 1e-9 {
		t.Fatalf("second batch: %+v, want score %v", st.Reputation, want)
	}
	if node := nodeDetail(t, dirURL); node["completed_tasks_count"] != float64(fx.Input.Success+2) {
		t.Fatalf("directory tally %v", node["completed_tasks_count"])
	}
}

func countOf(ids []string, id string) (n int) {
	for _, v := range ids {
		if v == id {
			n++
		}
	}
	return n
}

func nodeDetail(t *testing.T, dirURL string) map[string]any {
	t.Helper()
	resp, err := http.Get(dirURL + "/v1/node/" + testNodeID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestREP_09_PendingBatchSurvivesRestart: a batch whose PONGs are all lost
// is saved with the credentials; the node dies without deregistering and
// restarts (a new Session on the same store, engine counters back at
// zero), re-registers with its saved token, resends that batch under the
// same metrics_batch_id, and the directory, which applied it the first
// time, acknowledges it without applying it again (8 tasks if it did).
func TestREP_09_PendingBatchSurvivesRestart(t *testing.T) {
	dirURL, endpoint := realDirectory(t)
	target, _ := url.Parse(dirURL)
	drop := &pongDropper{proxy: httputil.NewSingleHostReverseProxy(target)}
	front := httptest.NewServer(drop)
	t.Cleanup(front.Close)
	store := NewMemoryStore()
	newSession := func(success int64) *Session {
		c, err := New(front.URL)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(SessionConfig{
			Client: c, Store: store,
			Registration: func() wire.RegisterRequest {
				return wire.RegisterRequest{NodeID: testNodeID, Endpoint: endpoint, Region: "local",
					Capabilities: []wire.Capability{{Intent: wire.IntentChat, Models: []string{"m"}, MaxTokens: 512}}, Limits: wire.Limits{MaxConcurrent: 2}}
			},
			Outcomes:   func() Outcomes { return Outcomes{Success: success} },
			BackoffMin: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, RequestTimeout: 2 * time.Second,
			Jitter: func() float64 { return 0.5 }, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	drop.drops.Store(1 << 20) // every PONG of a batch with outcomes is lost
	drop.down.Store(true)
	first := newSession(4)
	stop := run(t, first)
	testutil.WaitFor(t, 10*time.Second, "the directory applied the batch", func() bool {
		return nodeDetail(t, dirURL)["completed_tasks_count"] == 4.0
	})
	stop()
	c, ok, _ := store.Load(front.URL)
	if !ok || c.PendingMetrics == nil || c.PendingMetrics.Metrics.TasksSuccess != 4 {
		t.Fatalf("pending batch not saved: %+v", c.PendingMetrics)
	}
	id := c.PendingMetrics.ID

	drop.drops.Store(0)
	drop.down.Store(false)
	second := newSession(0) // a restarted engine counts from zero
	stop = run(t, second)
	defer stop()
	testutil.WaitFor(t, 10*time.Second, "the saved batch acknowledged", func() bool { return second.Status().BatchAccepted == id })
	if n := nodeDetail(t, dirURL); n["completed_tasks_count"] != 4.0 || n["reputation_score"] != 0.54 {
		t.Fatalf("the resent batch was applied again: %v", n)
	}
	if st := second.Status(); st.ReportedSuccess != 4 {
		t.Fatalf("status after restart: %+v", st.Reputation)
	}
	testutil.WaitFor(t, 5*time.Second, "pending batch cleared from the store", func() bool {
		c, _, _ := store.Load(front.URL)
		return c.PendingMetrics == nil
	})
}

// TestREP_09_BatchAcknowledgementDialects: a pending batch is settled by a
// PONG naming it, and by a legacy PONG (no reputation_model, no
// metrics_batch_accepted: resending would count it twice there); a §3.2
// PONG with null or another batch's id leaves it pending, to be resent
// under the same id with the same counts.
func TestREP_09_BatchAcknowledgementDialects(t *testing.T) {
	other := "mb-other"
	cases := []struct {
		name    string
		pong    func(id string) *wire.Pong
		settled bool
	}{
		{"names the batch", func(id string) *wire.Pong {
			return &wire.Pong{OK: true, ReputationModel: "outcome-v2", MetricsBatchAccepted: &id}
		}, true},
		{"legacy directory", func(string) *wire.Pong { return &wire.Pong{OK: true} }, true},
		{"outcome-v2, null", func(string) *wire.Pong { return &wire.Pong{OK: true, ReputationModel: "outcome-v2"} }, false},
		{"another batch", func(string) *wire.Pong { return &wire.Pong{OK: true, MetricsBatchAccepted: &other} }, false},
	}
	for _, c := range cases {
		var b batcher
		var r Reputation
		first, fresh := b.next(Outcomes{Success: 2, Failed: 1})
		if !fresh || first.metrics.TasksSuccess != 2 || first.metrics.TasksFailed != 1 {
			t.Fatalf("%s: first batch %+v", c.name, first)
		}
		if got := b.acknowledged(c.pong(first.id), &r); got != c.settled {
			t.Fatalf("%s: settled=%v, want %v", c.name, got, c.settled)
		}
		again, fresh := b.next(Outcomes{Success: 5, Failed: 1})
		if c.settled && (!fresh || again.id == first.id || again.metrics.TasksSuccess != 3 || again.metrics.TasksFailed != 0) {
			t.Errorf("%s: after settling, next batch %+v (fresh %v), want the 3 new successes", c.name, again, fresh)
		}
		if !c.settled && (fresh || again.id != first.id || again.metrics != first.metrics || r.PendingBatch != first.id) {
			t.Errorf("%s: unsettled batch not resent unchanged: %+v", c.name, again)
		}
	}
}
