package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/wire"
)

// The service-lifecycle profile on the task protocol (iicp-framing.md
// §4.4.1–§4.4.2, §10.4; docs/spec-decisions.md ## service-lifecycle
// profile). A CALL that lists urn:iicp:profile:service-lifecycle:v1 (native
// key 21) gets, on the same stream: an OBSERVE frame carrying the
// `accepted` envelope, one RESPONSE frame per partial (status "partial",
// is_final=false, key 13), and exactly one terminal RESPONSE (is_final=true,
// key 13); then the server closes. Only the native protocol streams; a CALL
// on the JSON protocol that requires the profile is refused
// (unsupported_profile).
//
// Cancellation and resumption (profile §5; docs/spec-decisions.md): a
// caller cancels by writing a CONTROL frame (wire.CancelControl) on the
// task's stream, or on a new stream to the same node when it lost the
// first; a stream that breaks without one leaves the task running for the
// engine's resume grace. A caller that lost its stream resumes with the
// same CALL on a new stream whose HEADERS frame carries resume_after (key
// 4): the events after that sequence follow, then the terminal RESPONSE.

// StreamEngine is implemented by engines that serve the lifecycle profile
// (node.Engine.ExecuteStream).
type StreamEngine interface {
	ExecuteStream(ctx context.Context, call *wire.Call, caller wire.Caller,
		emit func(l wire.Lifecycle, chunk json.RawMessage) error) *wire.Response
}

// ResumeEngine is implemented by engines that resume streamed tasks
// (node.Engine.ResumeStream).
type ResumeEngine interface {
	ResumeStream(ctx context.Context, call *wire.Call, caller wire.Caller, after uint64,
		emit func(l wire.Lifecycle, chunk json.RawMessage) error) *wire.Response
}

// CancelEngine is implemented by engines that cancel tasks on request
// (node.Engine.Cancel).
type CancelEngine interface {
	Cancel(ctx context.Context, cc *wire.CancelControl, auth *wire.Auth, caller wire.Caller) *wire.Response
}

// EventFunc receives a streamed call's non-terminal events in order:
// accepted (chunk nil), then partials with their incremental result. An
// error aborts the call: a CONTROL cancel goes to the peer, which stops
// the backend request.
type EventFunc func(l wire.Lifecycle, chunk json.RawMessage) error

// errEventAbort wraps an EventFunc's error: the caller stopped listening.
var errEventAbort = errors.New("mesh: event consumer stopped")

// maxStreamedBytes bounds the partial results of one streamed answer: a
// buffered answer fits one frame, so a peer streaming more than that is
// flooding its caller.
const maxStreamedBytes = wire.MaxFramePayload

// execute runs call on the engine, streamed when negotiated and possible,
// resumed when the HEADERS asked for it.
func (m *Mesh) execute(ctx context.Context, s network.Stream, c *taskCodec, call *wire.Call, caller wire.Caller, resumeAfter *uint64) *wire.Response {
	eng := m.engineFor(c)
	se, ok := eng.(StreamEngine)
	if !ok || !c.streams || !call.Negotiates(wire.ProfileServiceLifecycle) {
		return eng.Execute(ctx, call, caller)
	}
	fw := wire.NewFrameWriter(s)
	emit := func(l wire.Lifecycle, chunk json.RawMessage) error {
		if l.Event == wire.EventAccepted {
			b, err := wire.EncodeLifecycleObserve(&l)
			if err != nil {
				return fmt.Errorf("encoding accepted event: %w", err)
			}
			return fw.WriteFrame(wire.TypeObserve, 0, b)
		}
		r := &wire.Response{TaskID: call.TaskID, Status: wire.StatusPartial, Result: chunk, Lifecycle: &l,
			SessionID: call.SessionID, CallID: call.CallID, NodeID: m.cfg.NodeID}
		b, err := c.encodeResp(r)
		if err != nil {
			return fmt.Errorf("encoding partial: %w", err)
		}
		m.stats.count("task_partial")
		return fw.WriteFrame(wire.TypeResponse, 0, b)
	}
	if resumeAfter != nil {
		re, ok := eng.(ResumeEngine)
		if !ok {
			return errorResponse(call.TaskID, wire.NewError(wire.CodeResumeUnavailable, "this node does not resume streams"))
		}
		m.stats.count("task_resume")
		return re.ResumeStream(ctx, call, caller, *resumeAfter, emit)
	}
	return se.ExecuteStream(ctx, call, caller, emit)
}

// maxControlBytes bounds a frame a caller sends after its CALL: only a
// cancellation CONTROL is expected there.
const maxControlBytes = 1 << 10

// watchCaller reads what the caller sends after its CALL until the stream
// ends: its FIN changes nothing; a cancellation CONTROL for this task
// cancels it (wire.ErrCancelRequested); a reset, a broken connection or
// any other frame is a lost caller (wire.ErrCallerLost: a streamed task
// then runs on for the engine's resume grace, a buffered one stops). What
// it reads once the RESPONSE is going out (responded) is no longer about
// this task: the frame, or the error, is returned for the handler (on a
// persistent stream, the next request's first frame).
func watchCaller(fr *wire.FrameReader, taskID string, cancel context.CancelCauseFunc, responded *atomic.Bool) frameIn {
	for {
		h, b, err := fr.ReadFrame()
		if responded.Load() {
			return frameIn{h: h, b: b, err: err}
		}
		switch {
		case errors.Is(err, io.EOF):
			return frameIn{err: err}
		case err == nil && h.Type == wire.TypeControl:
			if cc, werr := wire.DecodeCancelNative(b); werr == nil && cc.TaskID == taskID {
				cancel(wire.ErrCancelRequested)
				continue
			}
		}
		cancel(wire.ErrCallerLost)
		if err == nil {
			err = errProtocol // a frame before the RESPONSE: not a request to serve
		}
		return frameIn{err: err}
	}
}

// watcher runs watchCaller for each request on a stream: on a persistent
// stream one goroutine serves them all (its stack, grown by the first
// read, is kept from call to call); otherwise a goroutine per request.
type watcher struct {
	fr   *wire.FrameReader
	req  chan watchReq // nil: one goroutine per request
	res  chan frameIn
	done chan struct{}
}

type watchReq struct {
	taskID    string
	cancel    context.CancelCauseFunc
	responded *atomic.Bool
}

func newWatcher(fr *wire.FrameReader, persistent bool) *watcher {
	w := &watcher{fr: fr}
	if persistent {
		w.req, w.res, w.done = make(chan watchReq, 1), make(chan frameIn, 1), make(chan struct{})
		go func() {
			defer close(w.done)
			for r := range w.req {
				w.res <- watchCaller(w.fr, r.taskID, r.cancel, r.responded)
			}
		}()
	}
	return w
}

// watch starts watching for one request; the result arrives on the
// returned channel, which the caller must receive from.
func (w *watcher) watch(taskID string, cancel context.CancelCauseFunc, responded *atomic.Bool) <-chan frameIn {
	if w.req == nil {
		ch := make(chan frameIn, 1)
		go func() { ch <- watchCaller(w.fr, taskID, cancel, responded) }()
		return ch
	}
	w.req <- watchReq{taskID: taskID, cancel: cancel, responded: responded}
	return w.res
}

// stop ends the persistent goroutine (every result received first).
func (w *watcher) stop() {
	if w.req != nil {
		close(w.req)
		<-w.done
	}
}

// cancelAnswerGrace bounds how long a cancel stream waits for the task's
// terminal event.
const cancelAnswerGrace = 5 * time.Second

// serveCancel answers a cancellation CONTROL sent on its own stream: the
// task's terminal RESPONSE (key 13) once it ends, or an error RESPONSE.
func (m *Mesh) serveCancel(s network.Stream, c *taskCodec, cc *wire.CancelControl, caller wire.Caller) {
	ce, ok := m.engineFor(c).(CancelEngine)
	var resp *wire.Response
	if ok {
		ctx, cancel := context.WithTimeout(m.ctx, cancelAnswerGrace)
		resp = ce.Cancel(ctx, cc, nil, caller)
		cancel()
	} else {
		resp = errorResponse(cc.TaskID, wire.NewError(wire.CodeNotFound, "no such task on this node"))
	}
	m.stats.count("task_cancel")
	_ = s.SetWriteDeadline(time.Now().Add(writeGrace))
	if err := m.writeResponse(s, nativeCodec, resp); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// readStreamed reads a lifecycle answer: the accepted OBSERVE and partial
// RESPONSEs go to onEvent after the receiver checks (§4: duplicates are
// dropped, any other violation is a protocol error) and, for partials,
// answerer (the node_id must be the peer's own, as for the terminal
// RESPONSE: output is bound to its sender before anyone sees it); the
// terminal RESPONSE is returned. A base RESPONSE (a peer that ignored the
// profile) is terminal too.
func readStreamed(fr *wire.FrameReader, taskID string, after *uint64, onEvent EventFunc, answerer func(*wire.Response) error) (*wire.Response, error) {
	recv := wire.NewLifecycleReceiver(taskID)
	if after != nil {
		recv = wire.ResumeLifecycleReceiver(taskID, *after)
	}
	total := 0
	for {
		h, b, err := fr.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("reading response: %w", err)
		}
		var l *wire.Lifecycle
		var resp *wire.Response
		switch h.Type {
		case wire.TypeObserve:
			var werr *wire.Error
			if l, werr = wire.DecodeLifecycleObserve(b); werr != nil {
				return nil, fmt.Errorf("%w: undecodable lifecycle event", errProtocol)
			}
		case wire.TypeResponse:
			var werr *wire.Error
			if resp, werr = wire.DecodeResponseNativeLifecycle(b); werr != nil {
				return nil, fmt.Errorf("%w: undecodable response", errProtocol)
			}
			resp.TaskID = taskID
			if resp.Lifecycle == nil {
				return resp, nil
			}
			l = resp.Lifecycle
		case wire.TypeClose:
			resp := closeResponse(decodeClose(b))
			resp.TaskID = taskID
			return resp, nil
		default:
			return nil, fmt.Errorf("%w: frame type %s", errProtocol, h.Type)
		}
		switch v := recv.AcceptEnvelope(l); v {
		case wire.LifecycleDuplicate:
			continue
		case wire.LifecycleOK:
		default:
			return nil, fmt.Errorf("%w: lifecycle %s", errProtocol, v)
		}
		if l.IsFinal {
			return resp, nil
		}
		var chunk json.RawMessage
		if resp != nil {
			if err := answerer(resp); err != nil {
				return nil, err
			}
			chunk = resp.Result
		}
		if total += len(chunk); total > maxStreamedBytes {
			return nil, fmt.Errorf("%w: streamed output exceeds %d bytes", errProtocol, maxStreamedBytes)
		}
		if err := onEvent(*l, chunk); err != nil {
			return nil, fmt.Errorf("%w: %w", errEventAbort, err)
		}
	}
}
