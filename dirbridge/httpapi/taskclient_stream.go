package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/meshnode/meshnode/cx"
	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/wire"
)

// maxEventBytes bounds one server-sent event of a lifecycle stream: a
// partial carries a few tokens; a terminal event at most a whole result.
const maxEventBytes = maxTaskResponse

// EventFunc receives a streamed task's non-terminal lifecycle events in
// order: accepted (chunk nil), then partials with their result chunk. An
// error stops reading and closes the connection, which the node treats as
// a lost caller (it keeps the task for its resume grace): cancel with
// CancelTask to stop it at once (route does).
type EventFunc func(l wire.Lifecycle, chunk json.RawMessage) error

// ErrEventAbort wraps an EventFunc's error.
var ErrEventAbort = errors.New("client: event consumer stopped")

// PostTaskStream is PostTask under the service-lifecycle profile: call
// should list wire.ProfileServiceLifecycle in required_profiles, and the
// node answers with a text/event-stream of lifecycle events
// (dirbridge/httpapi stream.go), each checked (sequence, finality) before
// ev sees it; sealed partials are opened like a buffered IICP-CX result.
// The terminal RESPONSE is returned. A node that answers with an ordinary
// body (it refused before accepting, or does not stream) is read as
// PostTask reads it.
func PostTaskStream(ctx context.Context, hc *http.Client, node wire.NodeSummary, call *wire.Call, consumerToken string, allowPlaintext bool, ev EventFunc) (*wire.Response, PostStatus, error) {
	return postTaskStream(ctx, hc, node, call, consumerToken, allowPlaintext, nil, ev)
}

// ResumeTaskStream is PostTaskStream for a caller whose event stream broke
// after it saw sequence after: the same CALL (same task_id and request)
// with Last-Event-ID, answered with the events after it and the terminal
// RESPONSE (dirbridge/httpapi stream.go), or resume_unavailable (410).
func ResumeTaskStream(ctx context.Context, hc *http.Client, node wire.NodeSummary, call *wire.Call, consumerToken string, allowPlaintext bool, after uint64, ev EventFunc) (*wire.Response, PostStatus, error) {
	return postTaskStream(ctx, hc, node, call, consumerToken, allowPlaintext, &after, ev)
}

func postTaskStream(ctx context.Context, hc *http.Client, node wire.NodeSummary, call *wire.Call, consumerToken string, allowPlaintext bool,
	after *uint64, ev EventFunc) (*wire.Response, PostStatus, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, opener, st, err := newTaskRequest(ctx, node, call, consumerToken, allowPlaintext, "text/event-stream, application/json")
	if err != nil {
		return nil, st, err
	}
	if after != nil {
		req.Header.Set(HeaderLastEventID, strconv.FormatUint(*after, 10))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, st, httperr.Transport("node", err)
	}
	defer resp.Body.Close()
	st.HTTPStatus = resp.StatusCode
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		r, err := readAnswer(resp, opener, call.TaskID)
		return r, st, err
	}
	recv := wire.NewLifecycleReceiver(call.TaskID)
	if after != nil {
		recv = wire.ResumeLifecycleReceiver(call.TaskID, *after)
	}
	r, err := readEvents(resp.Body, opener, recv, call.TaskID, ev)
	return r, st, err
}

// readEvents reads lifecycle events until the terminal one.
func readEvents(body io.Reader, opener *cx.ResponseOpener, recv *wire.LifecycleReceiver, taskID string, ev EventFunc) (*wire.Response, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
	var name string
	var data []byte
	total := 0
	for sc.Scan() {
		line := sc.Bytes()
		if v, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			name = string(bytes.TrimSpace(v))
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			// A whole buffered answer is at most maxTaskResponse: a node
			// streaming more is flooding its caller.
			if total += len(v); total > maxEventBytes {
				return nil, errors.New("the node's event stream exceeds the response size limit")
			}
			data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
			continue
		}
		if len(line) > 0 || data == nil {
			continue // comments and unknown fields
		}
		r, l, err := decodeEvent(name, data, opener)
		name, data = "", nil
		if err != nil {
			return nil, err
		}
		switch v := recv.AcceptEnvelope(l); v {
		case wire.LifecycleDuplicate:
			continue
		case wire.LifecycleOK:
		default:
			return nil, fmt.Errorf("node broke the lifecycle profile: %s", v)
		}
		if l.IsFinal {
			r.TaskID = taskID
			return r, nil
		}
		var chunk json.RawMessage
		if r != nil {
			chunk = r.Result
		}
		if err := ev(*l, chunk); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEventAbort, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading task events: %w", httperr.Transport("node", err))
	}
	return nil, errors.New("the node's event stream ended before the terminal event")
}

// decodeEvent reads one event: accepted carries only its envelope, the
// others a RESPONSE (opened when sealed) whose envelope names the event.
func decodeEvent(name string, data []byte, opener *cx.ResponseOpener) (*wire.Response, *wire.Lifecycle, error) {
	if name == wire.EventAccepted {
		var a struct {
			Lifecycle *wire.Lifecycle `json:"lifecycle"`
		}
		if json.Unmarshal(data, &a) != nil || a.Lifecycle == nil {
			return nil, nil, errors.New("undecodable accepted event")
		}
		return nil, a.Lifecycle, nil
	}
	plain, werr := opener.Open(data)
	if werr != nil {
		return nil, nil, werr
	}
	r, werr := wire.DecodeResponseJSON(plain)
	if werr != nil || r.Lifecycle == nil || r.Lifecycle.Event != name {
		return nil, nil, errors.New("undecodable lifecycle event")
	}
	return r, r.Lifecycle, nil
}
