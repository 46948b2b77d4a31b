package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// This file is the provider side of the service-lifecycle profile
// (iicp-service-lifecycle-profile.md): ExecuteStream runs a CALL like
// Execute and reports its lifecycle as it goes — `accepted` once the task
// holds a slot, one `partial` per chunk the backend produces, and exactly
// one terminal event on the returned RESPONSE. Sequence numbers start at 0
// and increase by one per event.

// Emit receives one non-terminal lifecycle event: accepted (chunk nil) or
// partial (chunk is the incremental result). An error (the caller went
// away) cancels the backend request.
type Emit = func(l wire.Lifecycle, chunk json.RawMessage) error

// ErrCancelRequested is the cancellation cause a transport gives when the
// caller asked to cancel (a CONTROL cancel or the HTTP cancel resource):
// the terminal event is then `cancelled` instead of `failed`.
var ErrCancelRequested = errors.New("node: caller cancelled the task")

// errStreamClosed: the terminal event has been decided; late chunks from a
// backend that outlived the deadline are dropped.
var errStreamClosed = errors.New("node: task stream already ended")

// ExecuteStream runs call under the lifecycle profile. emit is called from
// the backend's goroutine, one event at a time and never after
// ExecuteStream returns. The returned RESPONSE is the terminal event: its
// Lifecycle is set, and after streamed chunks a successful Result is empty
// (the chunks were the output, §4).
func (e *Engine) ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller, emit Emit) *wire.Response {
	if call == nil || emit == nil {
		return e.Execute(ctx, call, caller)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st := &streamer{taskID: call.TaskID, emit: emit, cancel: cancel}
	resp := e.executeProfiles(backend.WithSink(ctx, st), call, caller, wire.SupportedProfiles)
	st.close()
	return st.terminal(resp, context.Cause(ctx))
}

// streamer is the Sink of one streamed task.
type streamer struct {
	taskID string
	emit   Emit
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	next     uint64
	accepted bool
	chunks   int
	closed   bool
}

// accept emits the accepted event (sequence 0).
func (s *streamer) accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted || s.closed {
		return
	}
	s.accepted = true
	s.send(wire.EventAccepted, nil)
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

// send emits one event; mu is held. A failed emit means the caller is
// gone: stop the backend.
func (s *streamer) send(ev string, chunk json.RawMessage) error {
	l := wire.Lifecycle{TaskID: s.taskID, Sequence: s.next, Event: ev}
	s.next++
	if err := s.emit(l, chunk); err != nil {
		s.cancel(err)
		return err
	}
	return nil
}

func (s *streamer) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
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
	case s.accepted && errors.Is(cause, ErrCancelRequested):
		ev = wire.EventCancelled
		resp.Error = wire.NewError(wire.CodeUnavailable, "task cancelled by caller")
		resp.Code = resp.Error.Code
	}
	resp.Lifecycle = &wire.Lifecycle{TaskID: s.taskID, Sequence: s.next, Event: ev, IsFinal: true}
	return resp
}
