package node

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// slowFixture serves llm:chat:v1 on a SlowLLM backend (model "test-model").
func slowFixture(t *testing.T, n int, every time.Duration, opts ...Option) (*fixture, *testutil.SlowLLM) {
	t.Helper()
	llm := testutil.NewSlowLLM("test-model", n, every)
	srv := httptest.NewServer(llm.Handler())
	t.Cleanup(srv.Close)
	be, err := backend.NewOpenAI(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, 2, nil, be, opts...), llm
}

type recorded struct {
	mu     sync.Mutex
	events []wire.Lifecycle
	text   strings.Builder
	at     []time.Time
}

func (r *recorded) emit(l wire.Lifecycle, chunk json.RawMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, l)
	r.at = append(r.at, time.Now())
	var c struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if chunk != nil {
		_ = json.Unmarshal(chunk, &c)
		for _, ch := range c.Choices {
			r.text.WriteString(ch.Delta.Content)
		}
	}
	return nil
}

// TestExecuteStreamLifecycle: accepted, one partial per token as the
// backend produces it, then one terminal completed event; the sequence is
// strictly increasing from 0 and the receiver accepts every event.
func TestExecuteStreamLifecycle(t *testing.T) {
	f, llm := slowFixture(t, 5, 10*time.Millisecond)
	call := chatCall("hi")
	call.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	var rec recorded
	resp := f.eng.ExecuteStream(context.Background(), call, httpCaller, rec.emit)
	if resp.Status != wire.StatusSuccess || resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("terminal: %+v %+v", resp, resp.Error)
	}
	if rec.text.String() != llm.Text() {
		t.Fatalf("streamed text %q, want %q", rec.text.String(), llm.Text())
	}
	recv := wire.NewLifecycleReceiver(call.TaskID)
	for _, l := range append(rec.events, *resp.Lifecycle) {
		if v := recv.AcceptEnvelope(&l); v != wire.LifecycleOK {
			t.Fatalf("event %+v: %s", l, v)
		}
	}
	if !recv.Done() || rec.events[0].Event != wire.EventAccepted {
		t.Fatalf("events %+v", rec.events)
	}
	// The first token reached us before the backend finished generating.
	if done := llm.FinishedAt(); len(done) != 1 || !rec.at[1].Before(done[0]) {
		t.Fatalf("first partial at %v, backend finished at %v", rec.at[1], done)
	}
}

// TestExecuteStreamCancel: a cancel request ends the task with exactly one
// terminal `cancelled` event and stops the backend request.
func TestExecuteStreamCancel(t *testing.T) {
	f, llm := slowFixture(t, 200, 10*time.Millisecond)
	call := chatCall("hi")
	ctx, cancel := context.WithCancelCause(context.Background())
	var rec recorded
	emit := func(l wire.Lifecycle, c json.RawMessage) error {
		if l.Sequence == 2 {
			cancel(ErrCancelRequested)
		}
		return rec.emit(l, c)
	}
	resp := f.eng.ExecuteStream(ctx, call, httpCaller, emit)
	if resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventCancelled || resp.Status != wire.StatusError {
		t.Fatalf("terminal %+v", resp.Lifecycle)
	}
	waitFor(t, "backend request cancelled", func() bool { return llm.Cancelled() == 1 })
}

// TestExecuteRequiresStreamTransport: a base transport refuses a CALL that
// requires the lifecycle profile before accepting it.
func TestExecuteRequiresStreamTransport(t *testing.T) {
	f, llm := slowFixture(t, 1, 0)
	call := chatCall("hi")
	call.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	wantError(t, f.eng.Execute(context.Background(), call, httpCaller), wire.CodeUnsupportedProfile, wire.StatusError)
	if llm.Started() != 0 {
		t.Fatal("the backend ran")
	}
	other := chatCall("hi")
	other.Constraints.RequiredProfiles = []string{"urn:iicp:profile:x.acme:unknown:v1"}
	wantError(t, f.eng.ExecuteStream(context.Background(), other, httpCaller, (&recorded{}).emit), wire.CodeUnsupportedProfile, wire.StatusError)
}

// LIFECYCLE-12 (fixture service-lifecycle-v1.json): a task_id reused with
// the same idempotency key but a different request is refused with
// conflict and not executed; a second streamed CALL with the task_id of an
// accepted one never starts another execution (half of LIFECYCLE-11: the
// engine answers conflict instead of replaying the known state).
func TestLIFECYCLE_12_ReusedTaskIDConflictNoExecution(t *testing.T) {
	f, llm := slowFixture(t, 3, time.Millisecond)
	first := chatCall("one")
	first.IdempotencyKey = "idem-1"
	if resp := f.eng.ExecuteStream(context.Background(), first, httpCaller, (&recorded{}).emit); resp.Status != wire.StatusSuccess {
		t.Fatalf("first: %+v", resp.Error)
	}
	again := chatCall("two")
	again.TaskID, again.IdempotencyKey = first.TaskID, "idem-1"
	var rec recorded
	resp := f.eng.ExecuteStream(context.Background(), again, httpCaller, rec.emit)
	wantError(t, resp, wire.CodeConflict, wire.StatusError)
	if resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventFailed || resp.Lifecycle.Sequence != 0 || len(rec.events) != 0 {
		t.Fatalf("conflict must be a rejection before acceptance: %+v, events %v", resp.Lifecycle, rec.events)
	}
	if llm.Started() != 1 {
		t.Fatalf("backend ran %d times, want 1", llm.Started())
	}
}
