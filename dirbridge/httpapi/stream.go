package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

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
// Partial and successful terminal RESPONSEs of an IICP-CX task are sealed
// like a buffered result (iicp-confidentiality.md §5a.3). A caller that
// closes the connection cancels the task: the request context ends and the
// engine cancels the backend request. A CALL refused before acceptance
// still gets its ordinary error status and body, so no client has to parse
// a stream to learn it was not authorized.

// StreamEngine is implemented by engines that serve the lifecycle profile
// (node.Engine).
type StreamEngine interface {
	ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller,
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

func (ew *eventWriter) event(name string, data []byte) error {
	if !ew.started {
		ew.w.Header().Set("Content-Type", MediaEventStream)
		ew.w.Header().Set("X-Accel-Buffering", "no")
		ew.w.WriteHeader(http.StatusOK)
		ew.started = true
	}
	ew.buf.Reset()
	ew.buf.WriteString("event: ")
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
			return ew.event(l.Event, b)
		}
		b, err := respond(&wire.Response{TaskID: call.TaskID, Status: wire.StatusPartial, Result: chunk, Lifecycle: &l,
			CallID: call.CallID, SessionID: call.SessionID})
		if err != nil {
			return err
		}
		return ew.event(l.Event, b)
	}
	resp := se.ExecuteStream(r.Context(), call, caller, emit)
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
	_ = ew.event(resp.Lifecycle.Event, b)
}
