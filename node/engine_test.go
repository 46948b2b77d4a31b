package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNODE_TASK_01_04_Success(t *testing.T) {
	f := newFixture(t, 2)
	call := chatCall("hello")
	r := f.eng.Execute(context.Background(), call, httpCaller)
	if r.Error != nil {
		t.Fatalf("error: %+v", r.Error)
	}
	// NODE-TASK-02: task_id echoed; NODE-TASK-03: status; NODE-TASK-04: latency.
	if r.TaskID != call.TaskID || r.Status != wire.StatusSuccess || r.Metrics.LatencyMs < 0 {
		t.Fatalf("response %+v", r)
	}
	if r.ModelUsed != "test-model" || r.Metrics.TokensUsed != 7 || r.NodeID != testNodeID {
		t.Fatalf("model_used=%q tokens=%d node_id=%q", r.ModelUsed, r.Metrics.TokensUsed, r.NodeID)
	}
	if r.GeneratedByAI == nil || !*r.GeneratedByAI {
		t.Fatalf("generated_by_ai = %v, want true on model output", r.GeneratedByAI)
	}
	var out struct {
		Choices []json.RawMessage `json:"choices"`
	}
	if err := json.Unmarshal(r.Result, &out); err != nil || len(out.Choices) != 1 {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	if s := f.eng.Stats(); s.Served["success"] != 1 || s.ActiveJobs != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEchoBackendIsNotGeneratedByAI(t *testing.T) {
	f := newFixtureWith(t, 1, nil, backend.NewEcho())
	r := f.eng.Execute(context.Background(), chatCall("x"), httpCaller)
	if r.Error != nil || r.GeneratedByAI == nil || *r.GeneratedByAI {
		t.Fatalf("echo response %+v generated_by_ai=%v, want false", r.Error, r.GeneratedByAI)
	}
}

func TestTASK_1_SEC_AUTH_NodeToken(t *testing.T) {
	f := newFixture(t, 2)
	cases := []struct {
		name string
		auth *wire.Auth
		ok   bool
	}{
		// SEC-AUTH-01 / SEC-RN-02: no auth object at all.
		{"missing auth", nil, false},
		// SEC-RN-01: empty token never opens the node.
		{"empty token", &wire.Auth{NodeToken: ""}, false},
		// SEC-AUTH-02: wrong token, same length.
		{"wrong token", &wire.Auth{NodeToken: strings.Repeat("x", len(testToken))}, false},
		// A prefix of the right token is still wrong.
		{"prefix", &wire.Auth{NodeToken: testToken[:10]}, false},
		{"right token", &wire.Auth{NodeToken: testToken}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call := chatCall("hi")
			call.Auth = tc.auth
			r := f.eng.Execute(context.Background(), call, httpCaller)
			if tc.ok {
				if r.Error != nil {
					t.Fatalf("want success, got %+v", r.Error)
				}
				return
			}
			wantError(t, r, wire.CodeUnauthorized, wire.StatusError)
			if r.Error.Status() != 401 {
				t.Fatalf("HTTP status %d", r.Error.Status())
			}
		})
	}
}

func TestTASK_1_NodeTokenRotation(t *testing.T) {
	f := newFixture(t, 1)
	f.eng.SetNodeToken("rotated-token-rotated-token-rotated-token")
	call := chatCall("hi")
	wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeUnauthorized, wire.StatusError)
	call = chatCall("hi")
	call.Auth.NodeToken = "rotated-token-rotated-token-rotated-token"
	if r := f.eng.Execute(context.Background(), call, httpCaller); r.Error != nil {
		t.Fatalf("rotated token refused: %+v", r.Error)
	}
	f.eng.SetNodeToken("")
	call = chatCall("hi")
	call.Auth.NodeToken = ""
	wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeUnauthorized, wire.StatusError)
}

func TestTASK_1_PeerAllowlistAndOpenMode(t *testing.T) {
	f := newFixture(t, 1, WithPeerAllowlist("12D3KooWAllowed"))
	call := chatCall("hi")
	call.Auth = nil
	if r := f.eng.Execute(context.Background(), call, wire.Caller{Transport: "quic", PeerID: "12D3KooWAllowed"}); r.Error != nil {
		t.Fatalf("allowlisted peer refused: %+v", r.Error)
	}
	call = chatCall("hi")
	call.Auth = nil
	wantError(t, f.eng.Execute(context.Background(), call, wire.Caller{Transport: "quic", PeerID: "12D3KooWOther"}),
		wire.CodeUnauthorized, wire.StatusError)

	open := newFixture(t, 1, WithOpenMode())
	call = chatCall("hi")
	call.Auth = nil
	if r := open.eng.Execute(context.Background(), call, httpCaller); r.Error != nil {
		t.Fatalf("open mode refused: %+v", r.Error)
	}
}

func TestTASK_2_NODE_TASK_06_DuplicateTaskID(t *testing.T) {
	f := newFixture(t, 2)
	call := chatCall("hi")
	if r := f.eng.Execute(context.Background(), call, httpCaller); r.Error != nil {
		t.Fatalf("first: %+v", r.Error)
	}
	dup := chatCall("other")
	dup.TaskID = call.TaskID
	r := f.eng.Execute(context.Background(), dup, httpCaller)
	wantError(t, r, wire.CodeConflict, wire.StatusError)
	if r.Error.Status() != 409 || r.TaskID != call.TaskID {
		t.Fatalf("status %d task_id %q", r.Error.Status(), r.TaskID)
	}
	if got := len(f.srv.arrivalOrder()); got != 1 {
		t.Fatalf("backend ran %d times, want 1", got)
	}
}

func TestTASK_2_UnauthenticatedCannotReserveTaskID(t *testing.T) {
	f := newFixture(t, 1)
	call := chatCall("hi")
	call.Auth = &wire.Auth{NodeToken: "wrong"}
	wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeUnauthorized, wire.StatusError)
	call.Auth = &wire.Auth{NodeToken: testToken}
	if r := f.eng.Execute(context.Background(), call, httpCaller); r.Error != nil {
		t.Fatalf("legitimate caller got %+v after a forged attempt", r.Error)
	}
}

// QOS-ADMIT-01 procedure (conformance-test-suite.md §13.7): max_concurrent=1,
// a realtime task in flight, a second realtime task gets 429 capacity_exceeded
// with qos_class and retry_after_ms. NODE-CONC-01 / TASK-3 are the same gate.
func TestQOS_ADMIT_01_NODE_CONC_01_TASK_3_CapacityExceeded(t *testing.T) {
	f := newFixture(t, 1)
	f.srv.hold()
	first := chatCall("first")
	first.Constraints.QoS = wire.QoSRealtime
	done := make(chan *wire.Response, 1)
	go func() { done <- f.eng.Execute(context.Background(), first, httpCaller) }()
	waitFor(t, "first task in flight", func() bool { return f.srv.inFlight.Load() == 1 })

	second := chatCall("second")
	second.Constraints.QoS = wire.QoSRealtime
	r := f.eng.Execute(context.Background(), second, httpCaller)
	wantError(t, r, wire.CodeCapacityExceeded, wire.StatusError)
	if r.Error.Status() != 429 || r.Error.QoSClass != wire.QoSRealtime || r.Error.RetryAfterMs <= 0 {
		t.Fatalf("capacity error %+v", r.Error)
	}
	f.srv.release()
	if r := <-done; r.Error != nil {
		t.Fatalf("first task: %+v", r.Error)
	}
	// The refused task never ran, so its task_id is free for a retry.
	if r := f.eng.Execute(context.Background(), second, httpCaller); r.Error != nil {
		t.Fatalf("retry of refused task_id: %+v", r.Error)
	}
}

func TestTASK_3_BatchRefusedImmediately(t *testing.T) {
	f := newFixture(t, 1, WithQoSWait(wire.QoSInteractive, 2*time.Second))
	f.srv.hold()
	done := make(chan *wire.Response, 1)
	go func() { done <- f.eng.Execute(context.Background(), chatCall("first"), httpCaller) }()
	waitFor(t, "first task in flight", func() bool { return f.srv.inFlight.Load() == 1 })

	batch := chatCall("batch")
	batch.Constraints.QoS = wire.QoSBatch
	start := time.Now()
	r := f.eng.Execute(context.Background(), batch, httpCaller)
	wantError(t, r, wire.CodeCapacityExceeded, wire.StatusError)
	if r.Error.QoSClass != wire.QoSBatch {
		t.Fatalf("qos_class %q", r.Error.QoSClass)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("batch refusal took %v; it must not wait", el)
	}
	f.srv.release()
	<-done
}

// Contended waiters are served by priority, not arrival (iicp-core.md §3.1).
func TestTASK_3_PriorityOrdersWaiters(t *testing.T) {
	f := newFixture(t, 1, WithQoSWait(wire.QoSInteractive, 3*time.Second))
	f.srv.hold()
	var wg sync.WaitGroup
	run := func(text, prio string) {
		c := chatCall(text)
		c.Constraints.Priority = prio
		c.Constraints.TimeoutMs = 60000
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := f.eng.Execute(context.Background(), c, httpCaller); r.Error != nil {
				t.Errorf("%s: %+v", text, r.Error)
			}
		}()
	}
	run("holder", wire.PriorityNormal)
	waitFor(t, "holder in flight", func() bool { return f.srv.inFlight.Load() == 1 })
	run("low", wire.PriorityLow)
	waitFor(t, "low waiting", func() bool { _, w, _ := f.eng.admit.snapshot(); return w == 1 })
	run("critical", wire.PriorityCritical)
	waitFor(t, "critical waiting", func() bool { _, w, _ := f.eng.admit.snapshot(); return w == 2 })
	f.srv.release()
	wg.Wait()
	got := strings.Join(f.srv.arrivalOrder(), ",")
	if got != "holder,critical,low" {
		t.Fatalf("backend order %s, want holder,critical,low", got)
	}
}

func TestTASK_4_TimeoutCancelsBackend(t *testing.T) {
	f := newFixture(t, 1)
	f.srv.hold()
	call := chatCall("slow")
	call.Constraints.TimeoutMs = 150
	start := time.Now()
	r := f.eng.Execute(context.Background(), call, httpCaller)
	wantError(t, r, wire.CodeTaskTimeout, wire.StatusTimeout)
	if r.Error.Status() != 504 {
		t.Fatalf("status %d", r.Error.Status())
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("timeout answered after %v", el)
	}
	if r.Metrics.LatencyMs < 150 {
		t.Fatalf("latency_ms %d < budget", r.Metrics.LatencyMs)
	}
	// The backend request was cancelled, not left running.
	waitFor(t, "backend cancellation", func() bool { return f.srv.cancelled.Load() == 1 })
	waitFor(t, "slot release", func() bool { return f.eng.Stats().ActiveJobs == 0 })
}

// A backend that ignores ctx still gets a timely task_timeout, and keeps its
// slot until it really returns, so max_concurrent stays true.
func TestTASK_4_StuckBackendKeepsSlotUntilReturn(t *testing.T) {
	unblock := make(chan struct{})
	stuck := &funcBackend{name: "stuck", fn: func(context.Context, backend.Request) (backend.Result, error) {
		<-unblock
		return backend.Result{Output: json.RawMessage(`{}`)}, nil
	}}
	f := newFixtureWith(t, 1, nil, stuck)
	call := chatCall("x")
	call.Constraints.TimeoutMs = 100
	wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeTaskTimeout, wire.StatusTimeout)
	if s := f.eng.Stats(); s.ActiveJobs != 1 {
		t.Fatalf("active %d while backend still runs, want 1", s.ActiveJobs)
	}
	close(unblock)
	waitFor(t, "slot release", func() bool { return f.eng.Stats().ActiveJobs == 0 })
}

func TestNODE_TASK_07_08_BackendErrorHidesDetail(t *testing.T) {
	f := newFixture(t, 1)
	f.srv.fail.Store(true)
	r := f.eng.Execute(context.Background(), chatCall("secret prompt"), httpCaller)
	wantError(t, r, wire.CodeBackendError, wire.StatusError)
	if r.Error.Status() != 502 {
		t.Fatalf("status %d", r.Error.Status())
	}
	body, _ := json.Marshal(r)
	for _, bad := range []string{"CUDA", "/home/", "secret prompt", "Traceback", "status 500"} {
		if strings.Contains(string(body), bad) {
			t.Fatalf("response leaks %q: %s", bad, body)
		}
	}
}

func TestBackendPanicReleasesSlot(t *testing.T) {
	panicky := &funcBackend{name: "panicky", fn: func(context.Context, backend.Request) (backend.Result, error) {
		panic("boom with payload text")
	}}
	f := newFixtureWith(t, 1, nil, panicky)
	for range 3 { // with max_concurrent=1 a leaked slot would turn the 2nd into 429
		r := f.eng.Execute(context.Background(), chatCall("x"), httpCaller)
		wantError(t, r, wire.CodeBackendError, wire.StatusError)
	}
	if s := f.eng.Stats(); s.ActiveJobs != 0 || s.Served["backend_error"] != 3 {
		t.Fatalf("stats %+v", s)
	}
	if strings.Contains(f.logs.String(), "boom with payload text") {
		t.Fatal("panic value logged")
	}
}

// inlineBackend is a funcBackend that promises to honour ctx, so the
// engine runs it on the caller's goroutine (Engine.runInline).
type inlineBackend struct{ funcBackend }

func (*inlineBackend) ReturnsOnCancel() bool { return true }

// The inline path (backends that honour ctx, like the OpenAI client) keeps
// the goroutine path's outcomes: task_timeout at the deadline, even when
// the backend answers after it; a contained panic; the slot released once
// the backend returns.
func TestTASK_4_InlineBackendKeepsOutcomes(t *testing.T) {
	var calls atomic.Int64
	be := &inlineBackend{funcBackend{name: "inline", fn: func(ctx context.Context, _ backend.Request) (backend.Result, error) {
		switch calls.Add(1) {
		case 1: // honours ctx
			<-ctx.Done()
			return backend.Result{}, ctx.Err()
		case 2: // answers, but only after the deadline
			<-ctx.Done()
			return backend.Result{Output: json.RawMessage(`{}`)}, nil
		default:
			panic("boom with payload text")
		}
	}}}
	f := newFixtureWith(t, 1, nil, be)
	for range 2 {
		call := chatCall("x")
		call.Constraints.TimeoutMs = 100
		wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeTaskTimeout, wire.StatusTimeout)
		if s := f.eng.Stats(); s.ActiveJobs != 0 {
			t.Fatalf("active %d after the backend returned, want 0", s.ActiveJobs)
		}
	}
	for range 2 { // with max_concurrent=1 a leaked slot would turn the 2nd into 429
		wantError(t, f.eng.Execute(context.Background(), chatCall("x"), httpCaller), wire.CodeBackendError, wire.StatusError)
	}
	if s := f.eng.Stats(); s.ActiveJobs != 0 || s.Served["backend_error"] != 2 || s.Served["task_timeout"] != 2 {
		t.Fatalf("stats %+v", s)
	}
	if strings.Contains(f.logs.String(), "boom with payload text") {
		t.Fatal("panic value logged")
	}
	if err := f.eng.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPROTO_URN_Validation(t *testing.T) {
	f := newFixture(t, 1)
	cases := []struct {
		name   string
		intent string
		code   wire.Code
	}{
		// PROTO-URN-01: must start with urn:iicp:intent:.
		{"PROTO-URN-01 prefix", "iicp:intent:llm:chat:v1", wire.CodeValidationError},
		// PROTO-URN-02: must end with a :v<N> version.
		{"PROTO-URN-02 version", "urn:iicp:intent:llm:chat", wire.CodeValidationError},
		// PROTO-URN-03: well formed but not served here.
		{"PROTO-URN-03 unknown", unservedIntent, wire.CodeUnknownIntent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call := chatCall("x")
			call.Intent = tc.intent
			r := f.eng.Execute(context.Background(), call, httpCaller)
			wantError(t, r, tc.code, wire.StatusError)
			if r.Error.Status() != 422 {
				t.Fatalf("status %d", r.Error.Status())
			}
		})
	}
}

func TestFailureMapping(t *testing.T) {
	f := newFixture(t, 1)
	unknownModel := chatCall("x")
	unknownModel.Model = "not-served"
	r := f.eng.Execute(context.Background(), unknownModel, httpCaller)
	wantError(t, r, wire.CodeE029, wire.StatusError)
	if r.Error.Status() != 404 {
		t.Fatalf("E029 status %d", r.Error.Status())
	}
	badPayload := chatCall("x")
	badPayload.Payload = json.RawMessage(`{"prompt":"no messages"}`)
	r = f.eng.Execute(context.Background(), badPayload, httpCaller)
	wantError(t, r, wire.CodeValidationError, wire.StatusError)

	invalid := chatCall("x")
	invalid.Constraints.TimeoutMs = 0
	wantError(t, f.eng.Execute(context.Background(), invalid, httpCaller), wire.CodeValidationError, wire.StatusError)
	wantError(t, f.eng.Execute(context.Background(), nil, httpCaller), wire.CodeValidationError, wire.StatusError)
}

func TestMETRICS_04_06_08_Series(t *testing.T) {
	f := newFixture(t, 1)
	f.eng.Execute(context.Background(), chatCall("a"), httpCaller)
	bad := chatCall("b")
	bad.Intent = unservedIntent
	f.eng.Execute(context.Background(), bad, httpCaller)
	text := metricText(t, f.reg)
	for _, want := range []string{
		`iicp_tasks_total intent="urn:iicp:intent:llm:chat:v1" status="success" 1`,
		// Unserved intents never become label values.
		`iicp_tasks_total intent="other" status="error" 1`,
		`iicp_task_latency_ms intent="urn:iicp:intent:llm:chat:v1" count=1`,
		`iicp_tokens_used_total intent="urn:iicp:intent:llm:chat:v1" 7`,
		`meshnode_tasks_total intent="other" outcome="unknown_intent" transport="http" 1`,
		`meshnode_max_concurrent 1`,
		`meshnode_task_auth_total method="node_token" 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s\n%s", want, text)
		}
	}
	if strings.Contains(text, "x.acme") {
		t.Fatal("caller-supplied intent became a label")
	}
	if !containsFloat(latencyBucketsMs, 5000) { // METRICS-08
		t.Fatal("no 5000 ms bucket")
	}
}

func containsFloat(xs []float64, v float64) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

func TestNODE_HEALTH_Engine(t *testing.T) {
	f := newFixture(t, 2, WithHealthCacheTTL(0))
	h := f.eng.Health(context.Background())
	if h.Status != "ok" || h.MaxConcurrent != 2 || h.Load != 0 || !h.Available || h.NodeID != testNodeID {
		t.Fatalf("health %+v", h)
	}
	if len(h.Intents) != 1 || h.Intents[0] != wire.IntentChat || len(h.Models) != 1 || h.Backend != "openai" {
		t.Fatalf("health intents/models %+v", h)
	}
	f.srv.badModels.Store(true)
	if h := f.eng.Health(context.Background()); h.Status != "degraded" {
		t.Fatalf("backend down but status %q", h.Status)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	r, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: backend.NewEcho(), Models: []string{"m"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]Option{
		"qos class": WithQoSWait("urgent", time.Millisecond),
		"qos wait":  WithQoSWait(wire.QoSRealtime, time.Hour),
		"idem":      WithIdempotency(0, 0),
		"key size":  WithDirectoryKeys(make([]byte, 3)),
		"peer":      WithPeerAllowlist(""),
		"logger":    WithLogger(nil),
	} {
		if _, err := New(Config{}, r, opt); err == nil {
			t.Errorf("%s: New accepted a bad option", name)
		}
	}
	if _, err := New(Config{MaxConcurrent: -1}, r); err == nil {
		t.Error("negative max_concurrent accepted")
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil resolver accepted")
	}
}

func TestCallFieldsReachBackendAndResponse(t *testing.T) {
	f := newFixture(t, 1)
	call := chatCall("x")
	call.Constraints.MaxTokens = 9
	call.CallID = "attempt-2"
	r := f.eng.Execute(context.Background(), call, httpCaller)
	if r.Error != nil || r.CallID != "attempt-2" {
		t.Fatalf("response %+v", r)
	}
	if got := f.srv.maxTokens.Load(); got != 9 {
		t.Fatalf("backend saw max_tokens %d, want 9", got)
	}
	// An IICP-CX envelope no transport opened: this node is not CX-capable.
	conf := chatCall("x")
	conf.Payload = nil
	conf.Conf = json.RawMessage(`{"v":1}`)
	wantError(t, f.eng.Execute(context.Background(), conf, httpCaller), wire.CodeE050, wire.StatusError)
}
