package dirclient

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testNodeID = "0f8fad5b-d9cb-469f-a165-70867728950e"

// tokenLog records OnToken calls.
type tokenLog struct {
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) add(_, tok string) { l.mu.Lock(); l.tokens = append(l.tokens, tok); l.mu.Unlock() }
func (l *tokenLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

func testSession(t *testing.T, d *fakeDir, mod func(*SessionConfig)) (*Session, *tokenLog, *MemoryStore) {
	t.Helper()
	c, err := New(d.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tl := &tokenLog{}
	store := NewMemoryStore()
	cfg := SessionConfig{
		Client: c,
		Registration: func() wire.RegisterRequest {
			return wire.RegisterRequest{NodeID: testNodeID, Endpoint: "http://127.0.0.1:8090", Region: "local",
				Capabilities: []wire.Capability{{Intent: wire.IntentChat}}, Limits: wire.Limits{MaxConcurrent: 2}}
		},
		Load:              func() Load { return Load{Load: 0.5, ActiveJobs: 1, Available: true} },
		Store:             store,
		OnToken:           tl.add,
		HeartbeatFallback: 20 * time.Millisecond,
		BackoffMin:        10 * time.Millisecond,
		BackoffMax:        40 * time.Millisecond,
		RequestTimeout:    2 * time.Second,
		Jitter:            func() float64 { return 0.5 },
		Logger:            slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, tl, store
}

// run starts s and returns a stop func that cancels and waits for Serve.
func run(t *testing.T, s *Session) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// DIR-LIFECYCLE-01/02/06 from the node side: register, heartbeat with the
// issued token and load figures, deregister on shutdown.
func TestDIR_LIFECYCLE_01_02_06_SessionLifecycle(t *testing.T) {
	d := newFakeDir(t)
	s, tl, store := testSession(t, d, nil)
	stop := run(t, s)
	eventually(t, 5*time.Second, "three heartbeats", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) >= 3 })

	regs, hbs, _ := d.snapshot()
	if regs[0].MessageType != "REGISTER" || regs[0].NodeID != testNodeID || regs[0].CurrentNodeToken != "" {
		t.Fatalf("first register %+v", regs[0])
	}
	if hb := hbs[0]; hb.NodeID != testNodeID || *hb.Load != 0.5 || *hb.ActiveJobs != 1 || !*hb.Available {
		t.Fatalf("heartbeat %+v", hb)
	}
	st := s.Status()
	if st.State != StateRegistered || st.NodeID != testNodeID || st.ObservedSourceIP != "127.0.0.1" || st.HeartbeatIntervalMs != minHeartbeat.Milliseconds() { // 20 ms clamped up
		t.Fatalf("status %+v", st)
	}
	if toks := tl.all(); len(toks) != 1 || toks[0] == "" {
		t.Fatalf("token hand-off %d tokens", len(toks))
	}
	stop()
	_, _, dereg := d.snapshot()
	if len(dereg) != 1 || dereg[0] != testNodeID {
		t.Fatalf("deregistered %v", dereg)
	}
	c, _, _ := store.Load(d.srv.URL)
	// The retired token stays: it proves ownership of the node's history
	// when the node registers again (dirbridge/directory continuity.go).
	if c.NodeToken == "" || c.NodeID != testNodeID {
		t.Fatalf("after deregister the stored token and node id must be kept: %+v", c.NodeID)
	}
	if toks := tl.all(); toks[len(toks)-1] != "" {
		t.Fatal("engine token not withdrawn on deregister")
	}
	if s.Status().State != StateStopped {
		t.Fatalf("state %s", s.Status().State)
	}
}

// DIR-LIFECYCLE-03/04/05: the refresh carries current_node_token, the
// replacement token is handed over and used; the old one is never reused.
func TestDIR_LIFECYCLE_03_05_TokenRotation(t *testing.T) {
	d := newFakeDir(t)
	s, tl, store := testSession(t, d, func(c *SessionConfig) { c.TokenRefresh = 50 * time.Millisecond })
	run(t, s)
	eventually(t, 5*time.Second, "two rotations", func() bool { regs, _, _ := d.snapshot(); return len(regs) >= 3 })
	eventually(t, 5*time.Second, "heartbeat after rotation", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) >= 3 })

	regs, _, _ := d.snapshot()
	toks := tl.all()
	for i := 1; i < len(regs) && i < len(toks); i++ {
		if regs[i].CurrentNodeToken != toks[i-1] {
			t.Fatalf("register %d did not present the previous token", i)
		}
	}
	c, _, _ := store.Load(d.srv.URL)
	d.mu.Lock()
	current := d.nodes[testNodeID]
	d.mu.Unlock()
	if c.NodeToken != current {
		t.Fatal("stored token is not the directory's current token")
	}
}

// DIR-HB-02/03 from the node side: 404 (directory forgot the node) and
// 401 (token revoked) both lead to a fresh registration, and the node
// keeps heartbeating afterwards.
func TestDIR_HB_02_03_ReregisterOn401And404(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(d *fakeDir)
	}{
		// The directory lost the node (e.g. expired and purged): 404.
		{"404 unknown node", func(d *fakeDir) { delete(d.nodes, testNodeID) }},
		// The token was revoked: 401; the dead token must not be replayed.
		{"401 revoked token", func(d *fakeDir) { d.nodes[testNodeID] = "revoked" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDir(t)
			s, _, _ := testSession(t, d, nil)
			run(t, s)
			eventually(t, 5*time.Second, "first heartbeat", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) >= 1 })
			d.mu.Lock()
			tc.corrupt(d)
			d.mu.Unlock()
			eventually(t, 5*time.Second, "re-registration", func() bool { regs, _, _ := d.snapshot(); return len(regs) >= 2 })
			n := 0
			eventually(t, 5*time.Second, "heartbeats resume", func() bool {
				_, hbs, _ := d.snapshot()
				if n == 0 {
					n = len(hbs)
				}
				return len(hbs) >= n+2
			})
			regs, _, _ := d.snapshot()
			if regs[1].CurrentNodeToken == "revoked" {
				t.Fatal("replayed a token the directory rejected")
			}
		})
	}
}

// The directory going away must not stop the node: the session keeps
// heartbeating with backoff and resumes on the same registration.
func TestSessionSurvivesDirectoryOutage(t *testing.T) {
	d := newFakeDir(t)
	s, _, _ := testSession(t, d, nil)
	run(t, s)
	eventually(t, 5*time.Second, "first heartbeat", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) >= 1 })
	d.mu.Lock()
	d.failNext, d.failStatus = 4, 503
	d.mu.Unlock()
	// Status says when the next attempt comes, so an operator sees progress.
	eventually(t, 5*time.Second, "retrying state with a next retry time", func() bool {
		st := s.Status()
		return st.State == StateRetrying && !st.NextRetry.IsZero()
	})
	_, before, _ := d.snapshot()
	eventually(t, 5*time.Second, "heartbeats resume", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) >= len(before)+2 })
	regs, _, _ := d.snapshot()
	if len(regs) != 1 {
		t.Fatalf("outage caused %d registrations; the existing one should survive", len(regs))
	}
	if st := s.Status(); st.State != StateRegistered || st.ConsecutiveFailures != 0 || !st.NextRetry.IsZero() {
		t.Fatalf("status after recovery %+v", st)
	}
}

// Retry-After is honoured (never earlier than asked) and jittered upward.
func TestSessionHonoursRetryAfter(t *testing.T) {
	d := newFakeDir(t)
	d.failNext, d.failStatus, d.retryAfter = 1, 429, "1"
	s, _, _ := testSession(t, d, nil)
	start := time.Now()
	run(t, s)
	eventually(t, 5*time.Second, "registration after Retry-After", func() bool { regs, _, _ := d.snapshot(); return len(regs) >= 1 })
	d.mu.Lock()
	at := d.regTimes[0]
	d.mu.Unlock()
	if gap := at.Sub(start); gap < time.Second {
		t.Fatalf("registered %v after a 429 with Retry-After: 1", gap)
	}
}

func TestBackoffAndRetryAfterWaits(t *testing.T) {
	d := newFakeDir(t)
	tests := []struct {
		name     string
		jitter   float64
		failures int
		err      error
		slow     bool
		want     time.Duration
	}{
		// First failure: half of BackoffMin with zero jitter.
		{"first no jitter", 0, 1, errors.New("x"), false, 5 * time.Millisecond},
		// Doubling per failure, full jitter gives the whole step.
		{"third full jitter", 0.999999, 3, errors.New("x"), false, 40 * time.Millisecond},
		// Bounded by BackoffMax however many failures.
		{"bounded", 0, 50, errors.New("x"), false, 20 * time.Millisecond},
		// Refusals wait the maximum.
		{"slow", 0, 1, errors.New("x"), true, 20 * time.Millisecond},
		// Retry-After wins, jitter only adds (≤ 20%).
		{"retry-after", 1, 1, &Error{Status: 429, RetryAfter: 2 * time.Second}, false, 2400 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := testSession(t, d, func(c *SessionConfig) { c.Jitter = func() float64 { return tc.jitter } })
			s.status.ConsecutiveFailures = tc.failures - 1
			got := s.fail(StateRetrying, tc.err, tc.slow)
			if got.Round(time.Millisecond) != tc.want {
				t.Fatalf("wait %v, want %v", got, tc.want)
			}
		})
	}
}

// iicp-core.md §11.2: compare the observed source IP with the endpoint host.
func TestObservedSourceIPMismatch(t *testing.T) {
	d := newFakeDir(t)
	s, _, _ := testSession(t, d, func(c *SessionConfig) {
		c.LookupHost = func(_ context.Context, host string) ([]string, error) {
			if host == "node.example" {
				return []string{"203.0.113.5", "2001:db8::5"}, nil
			}
			return nil, errors.New("no such host")
		}
	})
	tests := []struct {
		endpoint, observed string
		want               bool
	}{
		{"http://127.0.0.1:8090", "127.0.0.1", false},      // loopback dev node
		{"https://203.0.113.5:8443", "198.51.100.7", true}, // behind NAT
		{"https://node.example", "203.0.113.5", false},     // resolves to the observed IP
		{"https://node.example", "2001:db8::5", false},     // IPv6 match
		{"https://node.example", "198.51.100.7", true},     // name elsewhere
		{"https://unknown.example", "198.51.100.7", false}, // cannot tell: no warning
		{"https://node.example", "", false},                // directory sent nothing
	}
	for _, tc := range tests {
		if got := s.observedMismatch(context.Background(), tc.endpoint, tc.observed); got != tc.want {
			t.Errorf("%s observed %s: mismatch=%v want %v", tc.endpoint, tc.observed, got, tc.want)
		}
	}
}

// e050Fixture is fixtures/profiles/e050-client-credential-lifecycle-v1.json.
type e050Fixture struct {
	Scenarios []struct {
		ID                  string  `json:"id"`
		StartingToken       *string `json:"starting_token"`
		RequestedEndpoint   string  `json:"requested_endpoint"`
		DirectoryStatus     int     `json:"directory_status"`
		DirectoryToken      *string `json:"directory_token"`
		ExpectedRequest     *string `json:"expected_request_token"`
		ExpectedSaved       string  `json:"expected_saved_token"`
		ExpectedEndpointSet bool    `json:"expected_endpoint_committed"`
	} `json:"scenarios"`
}

func specFile(tb testing.TB, parts ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{spectest.Dir()}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("spec file: %v", err)
	}
	return p
}

// The E050 client credential lifecycle vectors: send the current token when
// present, persist only an accepted successor, keep the saved token when a
// registration fails.
func TestE050ClientCredentialLifecycleFixture(t *testing.T) {
	raw, err := os.ReadFile(specFile(t, "fixtures", "profiles", "e050-client-credential-lifecycle-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx e050Fixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Scenarios) == 0 {
		t.Fatal("fixture has no scenarios")
	}
	for _, sc := range fx.Scenarios {
		t.Run(sc.ID, func(t *testing.T) {
			d := newFakeDir(t)
			var mu sync.Mutex
			var sent []string
			d.srv.Config.Handler = scriptedRegister(t, &mu, &sent, sc.DirectoryStatus, sc.DirectoryToken)
			s, _, store := testSession(t, d, func(c *SessionConfig) {
				c.Registration = func() wire.RegisterRequest {
					return wire.RegisterRequest{NodeID: testNodeID, Endpoint: sc.RequestedEndpoint, Region: "local",
						Capabilities: []wire.Capability{{Intent: wire.IntentChat}}, Limits: wire.Limits{MaxConcurrent: 1}}
				}
			})
			if sc.StartingToken != nil {
				_ = store.Save(d.srv.URL, Credentials{NodeID: testNodeID, NodeToken: *sc.StartingToken})
			}
			stop := run(t, s)
			eventually(t, 5*time.Second, "one register", func() bool { mu.Lock(); defer mu.Unlock(); return len(sent) >= 1 })
			// The directory has answered; wait until the session has acted on
			// that answer (committed it, or counted it as a failure) before
			// stopping, or the check below races the save.
			eventually(t, 5*time.Second, "register answer handled", func() bool {
				st := s.Status()
				return !st.RegisteredAt.IsZero() || st.ConsecutiveFailures > 0
			})
			stop()
			mu.Lock()
			first := sent[0]
			mu.Unlock()
			want := ""
			if sc.ExpectedRequest != nil {
				want = *sc.ExpectedRequest
			}
			if first != want {
				t.Fatalf("request token %q, want %q", first, want)
			}
			c, _, _ := store.Load(d.srv.URL)
			if c.NodeToken != sc.ExpectedSaved {
				t.Fatalf("saved token %q, want %q", c.NodeToken, sc.ExpectedSaved)
			}
			committed := !s.Status().RegisteredAt.IsZero()
			if committed != sc.ExpectedEndpointSet {
				t.Fatalf("endpoint committed=%v, want %v", committed, sc.ExpectedEndpointSet)
			}
		})
	}
}

// scriptedRegister answers REGISTER with the scenario's status and token and
// every other request with 503, recording the presented current_node_token.
func scriptedRegister(t *testing.T, mu *sync.Mutex, sent *[]string, status int, token *string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/register" {
			writeErr(w, 503, wire.CodeUnavailable, "scripted")
			return
		}
		var req wire.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("decoding register: %v", err)
		}
		mu.Lock()
		*sent = append(*sent, req.CurrentNodeToken)
		mu.Unlock()
		if status != 201 || token == nil {
			writeErr(w, status, wire.CodeE050, "ownership proof required")
			return
		}
		writeJSON(w, 201, wire.RegisterAck{NodeID: req.NodeID, NodeToken: *token, ObservedSourceIP: "127.0.0.1", NextHeartbeatMs: 1000})
	})
}

// Beat sends a heartbeat at once (availability changed) instead of at the
// next interval, carrying the new available flag (DIR-HB, iicp-dir.md §3.2).
func TestSessionBeatHeartbeatsAtOnce(t *testing.T) {
	d := newFakeDir(t)
	d.mu.Lock()
	d.nextHBms = 600_000 // ten minutes: only Beat can cause a second heartbeat
	d.mu.Unlock()
	var avail atomic.Bool
	avail.Store(true)
	s, _, _ := testSession(t, d, func(c *SessionConfig) {
		c.Load = func() Load { return Load{Available: avail.Load()} }
	})
	run(t, s)
	eventually(t, 5*time.Second, "registered", func() bool { return s.Status().State == StateRegistered })
	_, hbs, _ := d.snapshot()
	n := len(hbs)
	avail.Store(false)
	s.Beat()
	eventually(t, 5*time.Second, "heartbeat after Beat", func() bool { _, hbs, _ := d.snapshot(); return len(hbs) > n })
	_, hbs, _ = d.snapshot()
	if hb := hbs[len(hbs)-1]; hb.Available == nil || *hb.Available {
		t.Fatalf("heartbeat after Beat says available: %+v", hb)
	}
}
