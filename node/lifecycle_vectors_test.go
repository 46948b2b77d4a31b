package node

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/spectest"
	"github.com/meshnode/meshnode/wire"
)

// lifecycleVector is one engine-behaviour vector of
// fixtures/profiles/service-lifecycle-v1.json (the event-sequence vectors
// run in wire, TestLifecycleVectors).
type lifecycleVector struct {
	ID            string   `json:"id"`
	Kind          string   `json:"kind"`
	AfterSequence uint64   `json:"after_sequence"`
	Retained      []uint64 `json:"retained_sequences"`
	Latest        uint64   `json:"latest_sequence"`
	WindowExpired bool     `json:"replay_window_expired"`
	SameRequest   bool     `json:"same_request"`
	ExistingState string   `json:"existing_state"`
	Expected      string   `json:"expected"`
}

// TestLifecycleEngineVectors runs the resume, retry, disconnect and
// late-cancel vectors against the engine with a real streaming backend.
func TestLifecycleEngineVectors(t *testing.T) {
	var f struct {
		Vectors []lifecycleVector `json:"vectors"`
	}
	if err := json.Unmarshal(spectest.Read(t, "fixtures", "profiles", "service-lifecycle-v1.json"), &f); err != nil {
		t.Fatal(err)
	}
	run := map[string]func(*testing.T, lifecycleVector){
		"replay_2_through_4":                 vectorResume,
		"resume_unavailable":                 vectorResumeExpired,
		"return_existing_state_no_execution": vectorRetrySame,
		"conflict_no_execution":              vectorRetryConflict,
		"state_unchanged":                    vectorDisconnect,
		"return_completed":                   vectorLateCancel,
	}
	ran := 0
	for _, v := range f.Vectors {
		switch v.Kind {
		case "resume", "retry", "disconnect", "late_cancel":
			fn := run[v.Expected]
			if fn == nil {
				t.Fatalf("%s: no runner for expected %q", v.ID, v.Expected)
			}
			ran++
			t.Run(v.ID, func(t *testing.T) { fn(t, v) })
		}
	}
	if ran != 6 {
		t.Fatalf("ran %d engine vectors, want 6 (LIFECYCLE-09..14)", ran)
	}
}

// slowTokensFor is the SlowLLM answer length whose terminal event has
// sequence latest: accepted (0), one partial per token, one for the
// finish_reason chunk and one for the usage chunk, then the terminal.
func slowTokensFor(latest uint64) int { return int(latest) - 3 }

func lifecycleCall() *wire.Call {
	c := chatCall("hi")
	c.IdempotencyKey = "idem-" + c.TaskID[:8]
	c.Constraints.RequiredProfiles = []string{wire.ProfileServiceLifecycle}
	return c
}

func sequences(ls []wire.Lifecycle) []uint64 {
	out := make([]uint64, len(ls))
	for i, l := range ls {
		out[i] = l.Sequence
	}
	return out
}

// vectorResume (LIFECYCLE-09): the log keeps the last events; a caller
// that saw up to after_sequence gets exactly the retained ones after it,
// from the same execution.
func vectorResume(t *testing.T, v lifecycleVector) {
	tokens := slowTokensFor(v.Latest)
	win := DefaultResumeWindow
	win.Events = len(v.Retained) - 1 // the terminal event is kept apart
	f, llm := slowFixture(t, tokens, time.Millisecond, WithResumeWindow(win))
	call := lifecycleCall()
	if resp := f.eng.ExecuteStream(context.Background(), call, httpCaller, (&recorded{}).emit); resp.Lifecycle.Sequence != v.Latest {
		t.Fatalf("terminal at %d, want %d (%+v)", resp.Lifecycle.Sequence, v.Latest, resp.Error)
	}
	again := *call
	again.CallID = "attempt-2"
	var rec recorded
	resp := f.eng.ResumeStream(context.Background(), &again, httpCaller, v.AfterSequence, rec.emit)
	got := append(sequences(rec.events), resp.Lifecycle.Sequence)
	if len(got) != len(v.Retained) {
		t.Fatalf("replayed %v, want %v", got, v.Retained)
	}
	for i := range got {
		if got[i] != v.Retained[i] {
			t.Fatalf("replayed %v, want %v", got, v.Retained)
		}
	}
	if resp.Lifecycle.Event != wire.EventCompleted || resp.CallID != "attempt-2" || llm.Started() != 1 {
		t.Fatalf("terminal %+v call_id %q, backend started %d", resp.Lifecycle, resp.CallID, llm.Started())
	}
	// A caller that missed a dropped event cannot resume.
	wantError(t, f.eng.ResumeStream(context.Background(), &again, httpCaller, v.AfterSequence-1, (&recorded{}).emit),
		wire.CodeResumeUnavailable, wire.StatusError)
}

// vectorResumeExpired (LIFECYCLE-10): after the retention window nothing
// is replayed and nothing executes: resume_unavailable.
func vectorResumeExpired(t *testing.T, v lifecycleVector) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f, llm := slowFixture(t, slowTokensFor(v.Latest), time.Millisecond, WithClock(clock))
	call := lifecycleCall()
	if resp := f.eng.ExecuteStream(context.Background(), call, httpCaller, (&recorded{}).emit); resp.Lifecycle.Sequence != v.Latest {
		t.Fatalf("terminal at %d, want %d", resp.Lifecycle.Sequence, v.Latest)
	}
	if !v.WindowExpired || len(v.Retained) != 0 {
		t.Fatalf("vector %+v is not an expired window", v)
	}
	offset.Store(int64(DefaultResumeWindow.TTL + time.Second))
	var rec recorded
	resp := f.eng.ResumeStream(context.Background(), call, httpCaller, v.AfterSequence, rec.emit)
	wantError(t, resp, wire.CodeResumeUnavailable, wire.StatusError)
	if len(rec.events) != 0 || llm.Started() != 1 || f.eng.tasks.size() != 0 {
		t.Fatalf("events %v, backend started %d, tasks kept %d", rec.events, llm.Started(), f.eng.tasks.size())
	}
	// A resume of a task this node never saw executes nothing either.
	other := lifecycleCall()
	wantError(t, f.eng.ResumeStream(context.Background(), other, httpCaller, 0, (&recorded{}).emit),
		wire.CodeResumeUnavailable, wire.StatusError)
	if llm.Started() != 1 {
		t.Fatal("a resume request started an execution")
	}
}

// startStreaming runs call on f in the background until it has emitted
// `events` events; done receives its terminal RESPONSE.
func startStreaming(t *testing.T, f *fixture, ctx context.Context, call *wire.Call, rec *recorded, events int) <-chan *wire.Response {
	t.Helper()
	done := make(chan *wire.Response, 1)
	go func() { done <- f.eng.ExecuteStream(ctx, call, httpCaller, rec.emit) }()
	waitFor(t, "the task streams", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.events) >= events
	})
	return done
}

// vectorRetrySame (LIFECYCLE-11): the same CALL while the task runs
// follows it — every event from the start, once — and executes nothing.
func vectorRetrySame(t *testing.T, v lifecycleVector) {
	f, llm := slowFixture(t, 20, 5*time.Millisecond)
	call := lifecycleCall()
	var first recorded
	done := startStreaming(t, f, context.Background(), call, &first, 3)
	if v.ExistingState != wire.StateRunning {
		t.Fatalf("vector state %q", v.ExistingState)
	}
	again := *call
	var rec recorded
	resp := f.eng.ExecuteStream(context.Background(), &again, httpCaller, rec.emit)
	<-done
	if resp.Lifecycle.Event != wire.EventCompleted || rec.text.String() != llm.Text() || llm.Started() != 1 {
		t.Fatalf("follower: %+v, text %q, backend started %d", resp.Lifecycle, rec.text.String(), llm.Started())
	}
	recv := wire.NewLifecycleReceiver(call.TaskID)
	for _, l := range append(rec.events, *resp.Lifecycle) {
		if verdict := recv.AcceptEnvelope(&l); verdict != wire.LifecycleOK {
			t.Fatalf("follower event %+v: %s", l, verdict)
		}
	}
}

// vectorRetryConflict (LIFECYCLE-12): the same task_id and key with a
// different request while the task is accepted is a conflict, refused
// before acceptance, and executes nothing.
func vectorRetryConflict(t *testing.T, v lifecycleVector) {
	f, llm := slowFixture(t, 20, 5*time.Millisecond)
	call := lifecycleCall()
	done := startStreaming(t, f, context.Background(), call, &recorded{}, 1)
	other := lifecycleCall()
	other.TaskID, other.IdempotencyKey = call.TaskID, call.IdempotencyKey
	other.Payload = json.RawMessage(`{"messages":[{"role":"user","content":"something else"}]}`)
	var rec recorded
	resp := f.eng.ExecuteStream(context.Background(), other, httpCaller, rec.emit)
	wantError(t, resp, wire.CodeConflict, wire.StatusError)
	if resp.Lifecycle == nil || resp.Lifecycle.Sequence != 0 || len(rec.events) != 0 || v.SameRequest {
		t.Fatalf("conflict must be a rejection before acceptance: %+v, events %v", resp.Lifecycle, rec.events)
	}
	<-done
	if llm.Started() != 1 {
		t.Fatalf("backend ran %d times, want 1", llm.Started())
	}
}

// vectorDisconnect (LIFECYCLE-13 "state unchanged"). meshnode's choice
// (docs/spec-decisions.md): a broken stream leaves the task running only
// for the resume grace. Within it the state is unchanged — a resume gets
// the rest of the answer from the same execution; a caller that does not
// come back cancels the backend request when the grace ends.
func vectorDisconnect(t *testing.T, v lifecycleVector) {
	if v.ExistingState != wire.StateRunning {
		t.Fatalf("vector state %q", v.ExistingState)
	}
	t.Run("within-grace-unchanged", func(t *testing.T) {
		win := DefaultResumeWindow
		win.Grace = time.Minute
		f, llm := slowFixture(t, 30, 5*time.Millisecond, WithResumeWindow(win))
		call := lifecycleCall()
		ctx, cancel := context.WithCancelCause(context.Background())
		var first recorded
		done := startStreaming(t, f, ctx, call, &first, 3)
		cancel(wire.ErrCallerLost)
		first.mu.Lock()
		last := first.events[len(first.events)-1].Sequence
		seen := first.text.String()
		first.mu.Unlock()
		var rest recorded
		resp := f.eng.ResumeStream(context.Background(), call, httpCaller, last, rest.emit)
		if resp.Lifecycle.Event != wire.EventCompleted || llm.Cancelled() != 0 || llm.Started() != 1 {
			t.Fatalf("resumed terminal %+v; backend cancelled %d, started %d", resp.Lifecycle, llm.Cancelled(), llm.Started())
		}
		if seen+rest.text.String() != llm.Text() {
			t.Fatalf("seen %q + resumed %q != %q", seen, rest.text.String(), llm.Text())
		}
		if r := <-done; r.Lifecycle.Event != wire.EventCompleted {
			t.Fatalf("the first caller's call ended %+v", r.Lifecycle)
		}
	})
	t.Run("after-grace-cancelled", func(t *testing.T) {
		win := DefaultResumeWindow
		win.Grace = 20 * time.Millisecond
		f, llm := slowFixture(t, 500, 5*time.Millisecond, WithResumeWindow(win))
		ctx, cancel := context.WithCancelCause(context.Background())
		done := startStreaming(t, f, ctx, lifecycleCall(), &recorded{}, 2)
		cancel(wire.ErrCallerLost)
		if r := <-done; r.Lifecycle.Event != wire.EventCancelled {
			t.Fatalf("abandoned task ended %+v, want cancelled", r.Lifecycle)
		}
		waitFor(t, "backend request cancelled", func() bool { return llm.Cancelled() == 1 })
	})
}

// vectorLateCancel (LIFECYCLE-14): a cancel after the terminal event
// changes nothing and answers the completed outcome.
func vectorLateCancel(t *testing.T, v lifecycleVector) {
	f, llm := slowFixture(t, 3, time.Millisecond)
	call := lifecycleCall()
	done := f.eng.ExecuteStream(context.Background(), call, httpCaller, (&recorded{}).emit)
	if done.Lifecycle.Event != wire.StateCompleted || v.ExistingState != wire.StateCompleted {
		t.Fatalf("task ended %+v", done.Lifecycle)
	}
	cc := &wire.CancelControl{Action: wire.ActionCancel, TaskID: call.TaskID, Reason: "late"}
	resp := f.eng.Cancel(context.Background(), cc, &wire.Auth{NodeToken: testToken}, httpCaller)
	if resp.Error != nil || resp.Lifecycle == nil || *resp.Lifecycle != *done.Lifecycle || resp.Status != wire.StatusSuccess {
		t.Fatalf("late cancel answered %+v %+v, want the completed terminal %+v", resp.Lifecycle, resp.Error, done.Lifecycle)
	}
	if llm.Started() != 1 {
		t.Fatal("the late cancel executed something")
	}
}

// TestCancelControlRunningTask: a cancel CONTROL from the task's principal
// ends a running task `cancelled` (its caller's stream gets that terminal
// event) and stops the backend; another principal, and an unknown task,
// get not_found; an unauthenticated one 401.
func TestCancelControlRunningTask(t *testing.T) {
	f, llm := slowFixture(t, 500, 5*time.Millisecond)
	call := lifecycleCall()
	done := startStreaming(t, f, context.Background(), call, &recorded{}, 2)
	cc := &wire.CancelControl{Action: wire.ActionCancel, TaskID: call.TaskID}
	peer := wire.Caller{Transport: "quic", PeerID: "12D3KooWother"}
	wantError(t, f.eng.Cancel(context.Background(), cc, nil, peer), wire.CodeUnauthorized, wire.StatusError)
	other := wire.Caller{Transport: "quic", PeerID: "12D3KooWother"}
	wantError(t, f.eng.Cancel(context.Background(), cc, &wire.Auth{NodeToken: testToken}, other), wire.CodeNotFound, wire.StatusError)
	unknown := &wire.CancelControl{Action: wire.ActionCancel, TaskID: newUUID()}
	wantError(t, f.eng.Cancel(context.Background(), unknown, &wire.Auth{NodeToken: testToken}, httpCaller), wire.CodeNotFound, wire.StatusError)

	cc.Reason = "reason-never-logged"
	resp := f.eng.Cancel(context.Background(), cc, &wire.Auth{NodeToken: testToken}, httpCaller)
	if resp.Lifecycle == nil || resp.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("cancel answered %+v %+v", resp.Lifecycle, resp.Error)
	}
	if r := <-done; r.Lifecycle.Event != wire.EventCancelled {
		t.Fatalf("the caller's stream ended %+v", r.Lifecycle)
	}
	waitFor(t, "backend request cancelled", func() bool { return llm.Cancelled() == 1 })
	if logs := f.logs.String(); strings.Contains(logs, "hi\"") || strings.Contains(logs, "reason-never-logged") {
		t.Fatal("the payload or the cancel reason reached the log")
	}
}

// TestFollowRequiresSamePrincipal: another caller who knows the task_id,
// the idempotency key and even the prompt cannot follow or resume the
// task: conflict, no event, no execution. The owner can.
func TestFollowRequiresSamePrincipal(t *testing.T) {
	f, llm := slowFixture(t, 20, 5*time.Millisecond, WithOpenMode())
	owner := wire.Caller{Transport: "quic", PeerID: "12D3KooWowner"}
	thief := wire.Caller{Transport: "quic", PeerID: "12D3KooWthief"}
	call := lifecycleCall()
	var first recorded
	done := make(chan *wire.Response, 1)
	go func() { done <- f.eng.ExecuteStream(context.Background(), call, owner, first.emit) }()
	waitFor(t, "the task streams", func() bool { first.mu.Lock(); defer first.mu.Unlock(); return len(first.events) >= 2 })
	var stolen recorded
	wantError(t, f.eng.ResumeStream(context.Background(), call, thief, 0, stolen.emit), wire.CodeConflict, wire.StatusError)
	wantError(t, f.eng.ExecuteStream(context.Background(), call, thief, stolen.emit), wire.CodeConflict, wire.StatusError)
	if len(stolen.events) != 0 {
		t.Fatalf("another principal got %d events", len(stolen.events))
	}
	var mine recorded
	if resp := f.eng.ResumeStream(context.Background(), call, owner, 0, mine.emit); resp.Lifecycle.Event != wire.EventCompleted {
		t.Fatalf("owner resume: %+v %+v", resp.Lifecycle, resp.Error)
	}
	<-done
	if llm.Started() != 1 {
		t.Fatalf("backend ran %d times", llm.Started())
	}
}

// TestTaskLogBoundsTerminalResult: a buffered result larger than the
// per-task bound is not kept; following that task is resume_unavailable,
// never a terminal event without its output.
func TestTaskLogBoundsTerminalResult(t *testing.T) {
	win := DefaultResumeWindow
	win.Bytes = 16
	f := newFixture(t, 2, WithResumeWindow(win)) // a backend that answers in one piece
	call := lifecycleCall()
	if resp := f.eng.ExecuteStream(context.Background(), call, httpCaller, (&recorded{}).emit); resp.Status != wire.StatusSuccess || len(resp.Result) <= 16 {
		t.Fatalf("task: %+v %+v", resp.Error, resp.Lifecycle)
	}
	wantError(t, f.eng.ExecuteStream(context.Background(), call, httpCaller, (&recorded{}).emit), wire.CodeResumeUnavailable, wire.StatusError)
}
