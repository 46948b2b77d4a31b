package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// This file is the provider side of the service-lifecycle profile
// (iicp-service-lifecycle-profile.md): ExecuteStream runs a CALL like
// Execute and reports its lifecycle as it goes — `accepted` once the task
// holds a slot, one `partial` per chunk the backend produces, and exactly
// one terminal event on the returned RESPONSE. Sequence numbers start at 0
// and increase by one per event. Every event also goes to the task's log
// (tasks.go), from which ResumeStream and a repeated CALL replay it.

// Emit receives one non-terminal lifecycle event: accepted (chunk nil) or
// partial (chunk is the incremental result). An error means the caller
// went away: the task runs on for the resume grace (tasks.go).
type Emit = func(l wire.Lifecycle, chunk json.RawMessage) error

// ErrCancelRequested is the cancellation cause a transport gives when the
// caller asked to cancel (wire.ErrCancelRequested).
var ErrCancelRequested = wire.ErrCancelRequested

// errStreamClosed: the terminal event has been decided; late chunks from a
// backend that outlived the deadline are dropped.
var errStreamClosed = errors.New("node: task stream already ended")

// ExecuteStream runs call under the lifecycle profile. emit is called one
// event at a time and never after ExecuteStream returns. The returned
// RESPONSE is the terminal event: its Lifecycle is set, and after streamed
// chunks a successful Result is empty (the chunks were the output, §4).
//
// ctx ending with cause wire.ErrCancelRequested cancels the task (terminal
// `cancelled`); with wire.ErrCallerLost the task runs on for the resume
// grace; any other end cancels it at once. A CALL whose task_id is known
// follows that task (same request and principal) or is a conflict.
func (e *Engine) ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller, emit Emit) *wire.Response {
	return e.stream(ctx, call, caller, nil, emit)
}

// ResumeStream is ExecuteStream for a caller that already saw the events
// up to sequence after: it gets the ones after it and the terminal
// RESPONSE, or resume_unavailable when they are no longer kept. It never
// starts an execution.
func (e *Engine) ResumeStream(ctx context.Context, call *wire.Call, caller wire.Caller, after uint64, emit Emit) *wire.Response {
	return e.stream(ctx, call, caller, &after, emit)
}

func (e *Engine) stream(ctx context.Context, call *wire.Call, caller wire.Caller, after *uint64, emit Emit) *wire.Response {
	if call == nil || emit == nil {
		return e.Execute(ctx, call, caller)
	}
	start := e.set.now()
	if p := wire.UnsupportedProfile(call, wire.SupportedProfiles); p != "" {
		return rejectedEnvelope(e.executeProfiles(ctx, call, caller, wire.SupportedProfiles), call.TaskID)
	}
	principal, out, ok := e.gate(call, caller, start)
	if !ok {
		return rejectedEnvelope(e.finish(call, caller, start, "", out), call.TaskID)
	}
	if after != nil {
		// A resume never starts an execution: a task this node does not
		// log (never did, or no longer) is unavailable, answered without
		// an envelope (it is no event of the task).
		rec := e.tasks.lookup(call.TaskID, start)
		if rec == nil {
			return e.finish(call, caller, start, "", failure(errResumeUnavailable()))
		}
		return e.followTask(ctx, rec, call, caller, principal, after, emit, start)
	}
	rec, existing := e.tasks.open(call, principal, start)
	if existing {
		return e.followTask(ctx, rec, call, caller, principal, nil, emit, start)
	}
	return e.runStream(ctx, call, caller, rec, emit, start)
}

// rejectedEnvelope marks a refusal before acceptance: a failed event at
// sequence 0, which receivers read as rejected.
func rejectedEnvelope(resp *wire.Response, taskID string) *wire.Response {
	resp.Lifecycle = &wire.Lifecycle{TaskID: taskID, Event: wire.EventFailed, IsFinal: true}
	return resp
}

// followTask answers a CALL whose task_id is known: the same request from
// the same principal follows the task (LIFECYCLE-09/11), anything else is
// a conflict and executes nothing (LIFECYCLE-12).
func (e *Engine) followTask(ctx context.Context, rec *taskRec, call *wire.Call, caller wire.Caller, principal string,
	after *uint64, emit Emit, start time.Time) *wire.Response {
	if rec.digest != requestDigest(call) || rec.principal != principal {
		out := failure(wire.NewError(wire.CodeConflict, "task_id already used for a different request"))
		resp := e.finish(call, caller, start, "", out)
		if after != nil {
			return resp // a resume: no event of the task, no envelope
		}
		return rejectedEnvelope(resp, call.TaskID)
	}
	e.met.resumed.Inc()
	rec.attach()
	defer rec.detach()
	resp, werr := rec.follow(ctx, after, emit)
	if werr != nil {
		// Not an outcome of the task: a base error RESPONSE, no envelope.
		return &wire.Response{TaskID: call.TaskID, CallID: call.CallID, SessionID: call.SessionID,
			Status: wire.StatusError, Result: nullResult, Error: werr, Code: werr.Code, NodeID: e.auth.getNodeID()}
	}
	resp.CallID, resp.SessionID = call.CallID, call.SessionID
	return resp
}

// runStream executes a new streamed task. Its context outlives the
// caller's by the resume grace when the caller's stream breaks.
func (e *Engine) runStream(ctx context.Context, call *wire.Call, caller wire.Caller, rec *taskRec,
	emit Emit, start time.Time) *wire.Response {
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	st := &streamer{taskID: call.TaskID, emit: emit, cancel: cancel, rec: rec, win: e.tasks.win}
	if rec != nil {
		rec.setCancel(cancel)
	}
	stop := context.AfterFunc(ctx, func() { st.callerDone(context.Cause(ctx)) })
	defer stop()
	qos, out := e.executeValid(backend.WithSink(runCtx, st), call, start)
	resp := e.finish(call, caller, start, qos, out)
	st.close()
	resp = st.terminal(resp, context.Cause(runCtx))
	e.tasks.end(rec, resp, st.wasAccepted(), e.set.now())
	return resp
}

// streamer is the Sink of one streamed task.
type streamer struct {
	taskID string
	emit   Emit
	cancel context.CancelCauseFunc
	rec    *taskRec // nil: the task log was full, the task cannot be resumed
	win    ResumeWindow

	mu       sync.Mutex
	next     uint64
	accepted bool
	chunks   int
	closed   bool
	gone     bool // the first caller stopped reading
}

// accept emits the accepted event (sequence 0).
func (s *streamer) accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted || s.closed {
		return
	}
	s.accepted = true
	_ = s.send(wire.EventAccepted, nil)
}

// Chunk implements backend.Sink.
func (s *streamer) Chunk(chunk json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStreamClosed
	}
	if !s.accepted {
		s.accepted = true
		if err := s.send(wire.EventAccepted, nil); err != nil {
			return err
		}
	}
	s.chunks++
	return s.send(wire.EventPartial, chunk)
}

// send logs one event and emits it to the first caller while it reads; mu
// is held. A task without a log stops when its caller is gone.
func (s *streamer) send(ev string, chunk json.RawMessage) error {
	l := wire.Lifecycle{TaskID: s.taskID, Sequence: s.next, Event: ev}
	s.next++
	if s.rec != nil {
		s.rec.add(l, chunk, s.win)
	}
	if s.gone {
		return nil
	}
	if err := s.emit(l, chunk); err != nil {
		if s.rec == nil {
			s.cancel(err)
			return err
		}
		s.gone = true
		s.rec.detach()
	}
	return nil
}

// callerDone handles the end of the first caller's context.
func (s *streamer) callerDone(cause error) {
	if s.rec == nil || !errors.Is(cause, wire.ErrCallerLost) {
		s.cancel(cause)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.gone = true
		s.rec.detach()
	}
}

func (s *streamer) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *streamer) wasAccepted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// terminal sets resp's terminal envelope (framing §4.4.2 status mapping).
// A task that was never accepted ends with a failed event at sequence 0,
// which receivers read as rejected.
func (s *streamer) terminal(resp *wire.Response, cause error) *wire.Response {
	ev := wire.EventFailed
	switch {
	case resp.Status == wire.StatusSuccess:
		ev = wire.EventCompleted
		if s.chunks > 0 {
			resp.Result = nil
		}
	case resp.Status == wire.StatusTimeout:
		ev = wire.EventTimedOut
	case s.accepted && (errors.Is(cause, wire.ErrCancelRequested) || errors.Is(cause, wire.ErrCallerLost)):
		ev = wire.EventCancelled
		resp.Error = wire.NewError(wire.CodeUnavailable, "task cancelled by caller")
		resp.Code = resp.Error.Code
	}
	resp.Lifecycle = &wire.Lifecycle{TaskID: s.taskID, Sequence: s.next, Event: ev, IsFinal: true}
	return resp
}
