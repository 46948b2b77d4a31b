package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/meshnode/meshnode/wire"
)

// The service-lifecycle profile on POST /v1/task (docs/spec-decisions.md
// ## service-lifecycle profile). A JSON CALL whose
// constraints.required_profiles lists urn:iicp:profile:service-lifecycle:v1
// is answered with 200 and Content-Type text/event-stream, one server-sent
// event per lifecycle event, the event name being the lifecycle event:
//
//	event: accepted   data: {"task_id":…,"lifecycle":{…}}
//	event: partial    data: RESPONSE (status "partial", lifecycle, result chunk)
//	event: completed  data: RESPONSE (status "success", lifecycle, is_final)
//	                  (or failed / cancelled / timed_out)
//
// Every event carries `id: <sequence>`. Partial and successful terminal
// RESPONSEs of an IICP-CX task are sealed like a buffered result
// (iicp-confidentiality.md §5a.3). A CALL refused before acceptance still
// gets its ordinary error status and body, so no client has to parse a
// stream to learn it was not authorized.
//
// Cancellation and resumption (profile §5, docs/spec-decisions.md): POST
// /v1/control with {"action":"cancel","task_id","reason"} cancels the task
// (control.go). A connection that closes without one leaves the task
// running for the engine's resume grace: the same CALL sent again with
// `Last-Event-ID: <last sequence seen>` gets the events after it, then the
// terminal event; a task nobody resumes is cancelled when the grace ends.

// StreamEngine is implemented by engines that serve the lifecycle profile
// (node.Engine).
type StreamEngine interface {
	ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller,
		emit func(l wire.Lifecycle, chunk json.RawMessage) error) *wire.Response
}

// ResumeEngine is implemented by engines that resume streamed tasks
// (node.Engine).
type ResumeEngine interface {
	ResumeStream(ctx context.Context, call *wire.Call, caller wire.Caller, after uint64,
		emit func(l wire.Lifecycle, chunk json.RawMessage) error) *wire.Response
}

// MediaEventStream is the lifecycle event stream's media type.
const MediaEventStream = "text/event-stream"

// streams reports whether this task is answered as an event stream.
func (s *Server) streams(call *wire.Call, cbor bool) (StreamEngine, bool) {
	se, ok := s.eng.(StreamEngine)
	return se, ok && !cbor && call.Negotiates(wire.ProfileServiceLifecycle)
}

// eventWriter writes lifecycle events as SSE; the headers go out with the
// first event.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	respond func(*wire.Response) ([]byte, error)
	started bool
	buf     bytes.Buffer
}

func (ew *eventWriter) event(name string, seq uint64, data []byte) error {
	if !ew.started {
		ew.w.Header().Set("Content-Type", MediaEventStream)
		ew.w.Header().Set("X-Accel-Buffering", "no")
		ew.w.WriteHeader(http.StatusOK)
		ew.started = true
	}
	ew.buf.Reset()
	ew.buf.WriteString("id: ")
	ew.buf.WriteString(strconv.FormatUint(seq, 10))
	ew.buf.WriteString("\nevent: ")
	ew.buf.WriteString(name)
	ew.buf.WriteString("\ndata: ")
	ew.buf.Write(data)
	ew.buf.WriteString("\n\n")
	if _, err := ew.w.Write(ew.buf.Bytes()); err != nil {
		return err
	}
	return ew.rc.Flush()
}

// streamTask runs call under the lifecycle profile and writes its events.
func (s *Server) streamTask(w http.ResponseWriter, r *http.Request, se StreamEngine, call *wire.Call, caller wire.Caller,
	respond func(*wire.Response) ([]byte, error)) {
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), respond: respond}
	emit := func(l wire.Lifecycle, chunk json.RawMessage) error {
		if l.Event == wire.EventAccepted {
			b, err := json.Marshal(struct {
				TaskID    string          `json:"task_id"`
				Lifecycle *wire.Lifecycle `json:"lifecycle"`
			}{call.TaskID, &l})
			if err != nil {
				return err
			}
			return ew.event(l.Event, l.Sequence, b)
		}
		b, err := respond(&wire.Response{TaskID: call.TaskID, Status: wire.StatusPartial, Result: chunk, Lifecycle: &l,
			CallID: call.CallID, SessionID: call.SessionID})
		if err != nil {
			return err
		}
		return ew.event(l.Event, l.Sequence, b)
	}
	// The connection closing is a lost caller, not a cancel (the engine
	// keeps the task for its resume grace).
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	defer cancel(nil)
	stop := context.AfterFunc(r.Context(), func() { cancel(wire.ErrCallerLost) })
	defer stop()
	resp := runStream(ctx, r, se, call, caller, emit)
	if !ew.started {
		// Refused before acceptance: the ordinary answer and status.
		s.writeResponse(w, resp, false, respond)
		return
	}
	b, err := respond(resp)
	if err != nil {
		s.log.Error("encoding task response failed", "task_id", resp.TaskID, "error", err)
		return
	}
	_ = ew.event(resp.Lifecycle.Event, resp.Lifecycle.Sequence, b)
}

// runStream executes call, or resumes it when Last-Event-ID is set.
func runStream(ctx context.Context, r *http.Request, se StreamEngine, call *wire.Call, caller wire.Caller,
	emit func(wire.Lifecycle, json.RawMessage) error) *wire.Response {
	after, resume, werr := lastEventID(r)
	if werr == nil && resume {
		if re, ok := se.(ResumeEngine); ok {
			return re.ResumeStream(ctx, call, caller, after, emit)
		}
		werr = wire.NewError(wire.CodeResumeUnavailable, "this node does not resume streams")
	}
	if werr != nil {
		return &wire.Response{TaskID: call.TaskID, Status: wire.StatusError, Result: json.RawMessage("null"), Error: werr, Code: werr.Code}
	}
	return se.ExecuteStream(ctx, call, caller, emit)
}

// lastEventID reads Last-Event-ID: the sequence a resuming caller saw
// last. resume=false: no resume asked.
func lastEventID(r *http.Request) (after uint64, resume bool, werr *wire.Error) {
	v := r.Header.Get(HeaderLastEventID)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, false, wire.NewError(wire.CodeValidationError, "Last-Event-ID must be a lifecycle sequence number").WithField("Last-Event-ID")
	}
	return n, true, nil
}
