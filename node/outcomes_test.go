package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// TestREP_01_02_EngineOutcomes: the heartbeat's outcome counters come from
// real executions against a real OpenAI-compatible server: successes (with
// their latency), backend failures and timeouts count; refusals that say
// nothing about execution (401, 422, unknown intent, duplicate task_id,
// capacity_exceeded) do not.
func TestREP_01_02_EngineOutcomes(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	for range 3 {
		wantOK(t, f.eng.Execute(ctx, chatCall("hi"), httpCaller))
	}
	f.srv.fail.Store(true)
	wantError(t, f.eng.Execute(ctx, chatCall("hi"), httpCaller), wire.CodeBackendError, wire.StatusError)
	f.srv.fail.Store(false)

	// Timeout: the backend holds past timeout_ms.
	f.srv.hold()
	slow := chatCall("slow")
	slow.Constraints.TimeoutMs = 100
	wantError(t, f.eng.Execute(ctx, slow, httpCaller), wire.CodeTaskTimeout, wire.StatusTimeout)
	f.srv.release()
	waitIdle(t, f)

	// Refusals.
	noAuth := chatCall("x")
	noAuth.Auth = nil
	f.eng.Execute(ctx, noAuth, httpCaller)
	bad := chatCall("x")
	bad.Constraints.TimeoutMs = 1
	f.eng.Execute(ctx, bad, httpCaller)
	unknown := chatCall("x")
	unknown.Intent = unservedIntent
	f.eng.Execute(ctx, unknown, httpCaller)
	dup := chatCall("x")
	wantOK(t, f.eng.Execute(ctx, dup, httpCaller))
	f.eng.Execute(ctx, dup, httpCaller)

	got := f.eng.Outcomes()
	if got.Success != 4 || got.Failed != 2 {
		t.Fatalf("outcomes %+v, want 4 successes and 2 failures (backend_error, task_timeout)", got)
	}
	if got.SuccessLatencyMs < 0 {
		t.Fatalf("latency sum %d", got.SuccessLatencyMs)
	}
}

// waitIdle waits (bounded) until no backend call holds a slot.
func waitIdle(t *testing.T, f *fixture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.eng.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func wantOK(t testing.TB, r *wire.Response) {
	t.Helper()
	if r.Error != nil || r.Status != wire.StatusSuccess {
		t.Fatalf("want success, got %s %+v", r.Status, r.Error)
	}
}
