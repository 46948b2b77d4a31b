package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/meshnode/meshnode/wire"
)

// The task protocol (docs/spec-decisions.md, ## mesh). One libp2p stream
// carries one task (on TaskProtocolPersist, one after another), following the QUIC stream mapping of iicp-framing.md
// §10.4: the client opens the stream, optionally sends one HEADERS frame,
// sends one CALL frame and waits; the server answers with
// one RESPONSE frame, or a CLOSE frame for a frame-level violation
// (§9.6), and closes. The libp2p protocol ID stands in for INIT/ACK: it
// fixes the framing version, the payload encoding and the one CUSTOM type.
const (
	// TaskProtocol carries integer-keyed native CBOR (iicp-framing.md §4).
	TaskProtocol protocol.ID = "/iicp/task/1.0.0"
	// TaskProtocolPersist is TaskProtocol on a stream that outlives its
	// task: after the RESPONSE of a buffered call the stream stays open for
	// the caller's next request (streampool.go).
	TaskProtocolPersist protocol.ID = "/iicp/task/1.1.0"
	// TaskProtocolJSON carries the JSON CALL/RESPONSE of iicp-core.md §3 in
	// the same frames, for peers and tools without the native codec.
	TaskProtocolJSON protocol.ID = "/iicp/task-json/1.0.0"

	// typeHeaders is the CUSTOM frame (iicp-framing.md §7) that carries
	// per-call transport headers the CALL body has no field for: the
	// consumer token that HTTP sends as X-IICP-Consumer-Token.
	typeHeaders wire.MsgType = 0xF0
	// maxHeadersBytes caps the HEADERS frame.
	maxHeadersBytes = 4 << 10

	// callReadTimeout bounds how long a server waits for the request frames.
	callReadTimeout = 10 * time.Second
	// execGrace is added to timeout_ms for the engine's backstop context:
	// the engine enforces timeout_ms itself and answers "timeout".
	execGrace = 1 * time.Second
	// writeGrace bounds writing the RESPONSE after execution.
	writeGrace = 5 * time.Second
	// callGrace is the client's margin over timeout_ms for dialling,
	// framing and the server's own grace.
	callGrace = 3 * time.Second
	// transportQUIC is the wire.Caller transport label of mesh streams.
	transportQUIC = "quic"
)

// taskCodec is one payload encoding of the task protocol.
type taskCodec struct {
	proto      protocol.ID
	encodeCall func(*wire.Call) ([]byte, error)
	decodeCall func([]byte) (*wire.Call, *wire.Error)
	encodeResp func(*wire.Response) ([]byte, error)
	decodeResp func([]byte) (*wire.Response, *wire.Error)
	// closeOnBody answers an undecodable or invalid CALL with CLOSE(reason)
	// as iicp-framing.md §9.6 requires of native CBOR; the JSON protocol
	// answers with an error RESPONSE instead.
	closeOnBody bool
	// streams: the protocol carries the service-lifecycle profile and
	// cancellation CONTROL frames (native CBOR only).
	streams bool
	// gateway: served by the gateway engine, answered for other nodes
	// (gateway.go).
	gateway bool
	// persistent: the stream carries one buffered request after another
	// (TaskProtocolPersist).
	persistent bool
}

var jsonCodec = &taskCodec{
	proto:      TaskProtocolJSON,
	encodeCall: func(c *wire.Call) ([]byte, error) { return wire.EncodeJSON(c) },
	decodeCall: wire.DecodeCallJSON,
	encodeResp: func(r *wire.Response) ([]byte, error) { return wire.EncodeJSON(r) },
	decodeResp: wire.DecodeResponseJSON,
}

// nativeCodec uses the strict decoders: peers on this protocol are
// meshnode nodes, which always encode the deterministic spec form.
var nativeCodec = &taskCodec{
	proto:       TaskProtocol,
	encodeCall:  wire.EncodeCallNative,
	decodeCall:  wire.DecodeCallNative,
	encodeResp:  wire.EncodeResponseNative,
	decodeResp:  wire.DecodeResponseNative,
	closeOnBody: true,
	streams:     true,
}

// persistCodec is nativeCodec on TaskProtocolPersist.
var persistCodec = func() *taskCodec {
	c := *nativeCodec
	c.proto, c.persistent = TaskProtocolPersist, true
	return &c
}()

// taskCodecs lists the served encodings, default first.
var taskCodecs = []*taskCodec{nativeCodec, jsonCodec, persistCodec}

// taskProtocols lists the task protocol IDs (resource manager limits).
var taskProtocols = []protocol.ID{TaskProtocol, TaskProtocolJSON, TaskProtocolPersist}

// headersMsg is the HEADERS frame payload. LOG-FORBIDDEN: ConsumerToken,
// Membership.
type headersMsg struct {
	ConsumerToken string `cbor:"1,keyasint,omitempty"`
	// Membership is the caller's membership credential (membership.go).
	Membership string `cbor:"2,keyasint,omitempty"`
	// Operator is the caller's operator delegation (operator.go).
	Operator *delegationMsg `cbor:"3,keyasint,omitempty"`
	// ResumeAfter asks to resume a streamed task after this sequence
	// (taskstream.go).
	ResumeAfter *uint64 `cbor:"4,keyasint,omitempty"`
}

// refusal says why an inbound stream is not executed and how to answer.
type refusal struct {
	silent bool             // reset with no reply (bad magic, dead stream)
	close  wire.CloseReason // reply CLOSE(close)
	resp   *wire.Error      // reply with an error RESPONSE, or its message in the CLOSE
}

func (r *refusal) name() string {
	switch {
	case r.silent:
		return "silent"
	case r.close != "":
		return string(r.close)
	}
	return string(r.resp.Code)
}

// taskHandler serves one inbound task stream with codec c.
func (m *Mesh) taskHandler(c *taskCodec) network.StreamHandler {
	return func(s network.Stream) {
		if !m.track() {
			_ = s.Reset()
			return
		}
		defer m.wg.Done()
		defer func() {
			// An engine bug must not take the node down with it.
			if r := recover(); r != nil {
				_ = s.Reset()
				m.log.Error("task handler panic", "peer", logPeer(s.Conn().RemotePeer()))
			}
		}()
		m.serveTask(s, c)
	}
}

// serveTask serves one inbound task stream: one request on the 1.0.0
// protocols; on TaskProtocolPersist (streampool.go) buffered requests one
// after another, until the caller closes the stream, it idles out, or a
// request that ends the stream (streamed, cancel, refused) is served.
func (m *Mesh) serveTask(s network.Stream, c *taskCodec) {
	fr := wire.NewFrameReader(s)
	ss := &servedStream{s: s, fr: fr, c: c, base: streamCaller(s), w: newWatcher(fr, c.persistent)}
	defer ss.w.stop()
	var first *frameIn
	for {
		fr.SetMaxPayload(m.cfg.MaxCallBytes)
		_ = s.SetDeadline(time.Now().Add(callReadTimeout))
		if first != nil {
			m.stats.count("task_stream_next")
		}
		next, ok := m.serveRequest(ss, first)
		if !ok {
			return
		}
		first = next
	}
}

// servedStream is the server's end of one task stream.
type servedStream struct {
	s    network.Stream
	fr   *wire.FrameReader
	c    *taskCodec
	base wire.Caller // what the connection proves about the caller (streamCaller)
	w    *watcher
	hdr  headersMemo
}

// headersMemo is the last HEADERS payload a stream carried and its
// decoding: a caller sends the same credentials with every request, so
// later requests skip the decode. Only the decoding is reused; each
// request's credentials are still judged on their own (callerOf).
type headersMemo struct {
	raw []byte
	hm  headersMsg
}

func (hc *headersMemo) decode(payload []byte) (headersMsg, error) {
	if hc.raw != nil && bytes.Equal(payload, hc.raw) {
		return hc.hm, nil
	}
	var hm headersMsg
	if err := cborDec.Unmarshal(payload, &hm); err != nil {
		return headersMsg{}, err
	}
	hc.raw, hc.hm = append(hc.raw[:0], payload...), hm
	return hm, nil
}

// frameIn is a frame (or the error reading it) the caller watcher read
// after a RESPONSE: the start of the next request on a persistent stream.
type frameIn struct {
	h   wire.Header
	b   []byte
	err error
}

// serveRequest serves one request whose first frame may already have been
// read (first). It returns the next request's first frame and true when the
// stream stays open for it.
func (m *Mesh) serveRequest(ss *servedStream, first *frameIn) (*frameIn, bool) {
	s, fr, w, c := ss.s, ss.fr, ss.w, ss.c
	remote := s.Conn().RemotePeer()
	call, hm, cc, ref := m.readRequest(ss, first)
	if ref != nil {
		m.stats.count("task_refused_" + ref.name())
		m.log.Warn("task stream refused", "peer", logPeer(remote), "reason", ref.name())
		m.refuse(s, c, ref)
		return nil, false
	}
	caller := m.callerOf(s, ss.base, hm)
	if cc != nil {
		m.serveCancel(s, c, cc, caller)
		return nil, false
	}
	// Only executing tasks count as load; a stream still sending its CALL does not.
	m.active.Add(1)
	counted := true
	defer func() {
		if counted {
			m.active.Add(-1)
		}
	}()
	timeout := time.Duration(call.Constraints.TimeoutMs) * time.Millisecond
	cctx, cancelCause := context.WithCancelCause(m.ctx)
	defer cancelCause(nil)
	ctx, cancel := context.WithTimeout(cctx, timeout+execGrace)
	defer cancel()
	// The watcher below needs no read deadline (and so no timer): the
	// handler ends its Read by closing the stream, or on a persistent
	// stream it reads the next request's first frame.
	_ = s.SetWriteDeadline(time.Now().Add(timeout + execGrace + writeGrace))
	_ = s.SetReadDeadline(time.Time{})
	keep := c.persistent && hm.ResumeAfter == nil && !call.Negotiates(wire.ProfileServiceLifecycle)
	if !keep {
		fr.SetMaxPayload(maxControlBytes)
	}
	// A caller that sends a cancel or resets the stream stops the engine
	// (taskstream.go watchCaller).
	var responded atomic.Bool
	watchDone := w.watch(call.TaskID, cancelCause, &responded)
	resp := m.execute(ctx, s, c, call, caller, hm.ResumeAfter)
	if resp == nil {
		resp = errorResponse(call.TaskID, wire.NewError(wire.CodeInternal, "engine returned no response"))
	}
	if resp.Error != nil && resp.Error.Code == wire.CodeUnauthorized {
		m.stats.count("task_unauthorized")
	}
	responded.Store(true)
	err := m.writeResponse(s, c, resp)
	m.active.Add(-1) // an idle persistent stream is no load
	counted = false
	m.stats.count("task_served")
	if keep && err == nil {
		return m.awaitNext(s, watchDone)
	}
	// Free the stream as soon as the RESPONSE is out: CloseWrite puts the
	// FIN on the response's own STREAM frame, Close drops our read side
	// without waiting for the caller's FIN, and returning ends the
	// handler, which is when libp2p releases the stream's resource scope.
	if err == nil {
		err = s.CloseWrite()
	}
	if err != nil {
		_ = s.Reset()
	} else {
		_ = s.Close()
	}
	_ = s.SetReadDeadline(time.Now())
	<-watchDone
	return nil, false
}

// awaitNext waits on a persistent stream for the caller's next request,
// up to the idle timeout or the mesh's end. An idle or closing server ends
// the stream with a FIN, never a reset: the caller then knows its next CALL
// (if it raced the FIN) was never read, and sends it on a fresh stream.
func (m *Mesh) awaitNext(s network.Stream, watchDone <-chan frameIn) (*frameIn, bool) {
	// Idle streams hold resource-manager slots: past the cap a stream is
	// ended at once (shed), and its caller opens a fresh one when needed.
	shed := m.idleServed.Add(1) > m.maxIdleServed()
	defer m.idleServed.Add(-1)
	var next frameIn
	if shed {
		m.stats.count("task_stream_shed")
		_ = s.SetReadDeadline(time.Now())
		next = <-watchDone
	} else {
		// A timer, not a read deadline, bounds the wait: setting a deadline
		// would wake the watcher blocked in Read right after the RESPONSE,
		// and that goroutine would run before the one sending the RESPONSE.
		idle := time.NewTimer(m.streamIdle())
		select {
		case next = <-watchDone:
		case <-idle.C:
			// The watcher's Read ends at the deadline, with the idle timeout;
			// a request that won the race is served.
			_ = s.SetReadDeadline(time.Now())
			next = <-watchDone
		case <-m.ctx.Done():
			_ = s.SetReadDeadline(time.Now())
			next = <-watchDone
			shed = true
		}
		idle.Stop()
	}
	if shed && next.err == nil {
		next.err = ErrClosed // a request that raced the shed or shutdown is not served
	}
	if next.err == nil {
		return &next, true
	}
	if isTimeout(next.err) && !shed {
		m.stats.count("task_stream_idle_closed")
	}
	if errors.Is(next.err, io.EOF) || isTimeout(next.err) || errors.Is(next.err, ErrClosed) {
		_ = s.CloseWrite()
		_ = s.Close()
	} else {
		_ = s.Reset()
	}
	return nil, false
}

// streamCaller is what the stream's connection proves about its caller,
// the same for every request on it: the authenticated peer, its node_id
// (the secure channel authenticated the peer's key, so the node_id is
// proven: the engine checks a consumer token's sub against it) and its IP.
func streamCaller(s network.Stream) wire.Caller {
	remote := s.Conn().RemotePeer()
	caller := wire.Caller{PeerID: remote.String(), Transport: transportQUIC}
	caller.PeerNodeID, _ = NodeIDOf(remote)
	if ip, err := manet.ToIP(s.Conn().RemoteMultiaddr()); err == nil {
		caller.RemoteIP = ip.String()
	}
	return caller
}

// callerOf adds to base (streamCaller) the verdicts on the credentials one
// request's HEADERS presented (the operator delegation is checked only
// when no membership credential admitted the caller). A membership refusal
// is reported before an operator one. Nothing carries over from an
// earlier request on the stream.
func (m *Mesh) callerOf(s network.Stream, base wire.Caller, hm headersMsg) wire.Caller {
	remote := s.Conn().RemotePeer()
	caller := base
	caller.ConsumerToken = hm.ConsumerToken
	caller.Member, caller.MemberRefusal = m.checkMember(remote, hm.Membership)
	if !caller.Member {
		// A member needs nothing more: no signature check, no count.
		var opRefusal *wire.Error
		caller.SameOperator, opRefusal = m.checkOperator(remote, hm.Operator)
		if caller.MemberRefusal == nil {
			caller.MemberRefusal = opRefusal
		}
	}
	return caller
}

// readRequest reads the optional HEADERS frame and the CALL, or on the
// native protocol a cancellation CONTROL (taskstream.go). first, when set,
// is the request's first frame, already read by the caller watcher.
func (m *Mesh) readRequest(ss *servedStream, first *frameIn) (*wire.Call, headersMsg, *wire.CancelControl, *refusal) {
	fr, c := ss.fr, ss.c
	var hm headersMsg
	for i := 0; i < 2; i++ {
		var h wire.Header
		var payload []byte
		var ref *refusal
		if i == 0 && first != nil {
			h, payload, ref = checkFrame(first.h, first.b, first.err)
		} else {
			h, payload, ref = checkFrame(fr.ReadFrame())
		}
		if ref != nil {
			return nil, hm, nil, ref
		}
		switch {
		case h.Type == typeHeaders && i == 0:
			if len(payload) > maxHeadersBytes {
				return nil, hm, nil, &refusal{close: wire.CloseFrameTooLarge}
			}
			var err error
			if hm, err = ss.hdr.decode(payload); err != nil {
				return nil, headersMsg{}, nil, &refusal{close: wire.CloseCBORDecodeError}
			}
		case h.Type == wire.TypeCall:
			if h.Flags&wire.FlagCompressed != 0 {
				// Compression is not offered on this protocol.
				return nil, hm, nil, &refusal{close: wire.CloseUnsupportedExtension}
			}
			call, werr := c.decodeCall(payload)
			if werr != nil && c.closeOnBody {
				return nil, hm, nil, &refusal{close: werr.CloseReason(), resp: werr}
			}
			if werr != nil {
				return nil, hm, nil, &refusal{resp: werr}
			}
			return call, hm, nil, nil
		case h.Type == wire.TypeControl && c.streams:
			cc, werr := wire.DecodeCancelNative(payload)
			if werr != nil {
				return nil, hm, nil, &refusal{close: werr.CloseReason(), resp: werr}
			}
			return nil, hm, cc, nil
		default:
			return nil, hm, nil, &refusal{close: wire.CloseProtocolError}
		}
	}
	return nil, hm, nil, &refusal{close: wire.CloseProtocolError}
}

// checkFrame applies the §9.6 header dispositions to a frame read.
func checkFrame(h wire.Header, payload []byte, err error) (wire.Header, []byte, *refusal) {
	if err != nil {
		var fe *wire.FrameError
		if errors.As(err, &fe) && fe.Reason != "" {
			return h, nil, &refusal{close: fe.Reason}
		}
		// Bad magic (not IICP: no reply), or the stream died or timed out.
		return h, nil, &refusal{silent: true}
	}
	if r := h.Check(func(t wire.MsgType) bool { return t == typeHeaders }); r != "" {
		return h, nil, &refusal{close: r}
	}
	return h, payload, nil
}

// refuse answers a refused stream: nothing, a CLOSE frame, or an error RESPONSE.
func (m *Mesh) refuse(s network.Stream, c *taskCodec, r *refusal) {
	if r.silent {
		_ = s.Reset()
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(writeGrace))
	var err error
	if r.close != "" {
		msg := ""
		if r.resp != nil {
			msg = r.resp.Message // wire messages never echo the input
		}
		err = writeClose(s, r.close, msg)
	} else {
		err = m.writeResponse(s, c, errorResponse("", r.resp))
	}
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func writeClose(w io.Writer, reason wire.CloseReason, msg string) error {
	b, err := wire.EncodeNative(&wire.CloseMsg{Reason: reason, Message: msg})
	if err != nil {
		return fmt.Errorf("encoding close: %w", err)
	}
	return wire.NewFrameWriter(w).WriteFrame(wire.TypeClose, 0, b)
}

// writeResponse encodes and writes resp; an unencodable or oversized
// response is replaced by an internal_error response.
func (m *Mesh) writeResponse(w io.Writer, c *taskCodec, resp *wire.Response) error {
	b, err := c.encodeResp(resp)
	if err != nil || len(b) > wire.MaxFramePayload {
		b, err = c.encodeResp(errorResponse(resp.TaskID, wire.NewError(wire.CodeInternal, "response could not be encoded")))
		if err != nil {
			return fmt.Errorf("encoding response: %w", err)
		}
	}
	return wire.NewFrameWriter(w).WriteFrame(wire.TypeResponse, 0, b)
}

// isTimeout reports a read that hit its deadline.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// errorResponse builds a failed RESPONSE for e.
func errorResponse(taskID string, e *wire.Error) *wire.Response {
	status := wire.StatusError
	if e.Code == wire.CodeTaskTimeout {
		status = wire.StatusTimeout
	}
	return &wire.Response{TaskID: taskID, Status: status, Error: e, Code: e.Code}
}

// decodeClose reads a CLOSE payload; an unreadable one is protocol_error.
func decodeClose(b []byte) wire.CloseMsg {
	var cm wire.CloseMsg
	if err := wire.DecodeNative(b, &cm, true); err != nil || cm.Reason == "" {
		return wire.CloseMsg{Reason: wire.CloseProtocolError}
	}
	return cm
}
