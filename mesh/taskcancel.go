package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/wire"
)

// The caller side of cancellation (iicp-service-lifecycle-profile.md §5,
// taskstream.go): a streamed call the caller gives up on sends a CONTROL
// cancel before it closes, and Mesh.Cancel cancels a task whose stream the
// caller lost.

// cancelWriteGrace bounds writing a cancellation.
const cancelWriteGrace = time.Second

// callStream is the caller's end of one task stream: the CALL write and an
// abort from the context's AfterFunc never interleave.
type callStream struct {
	s        network.Stream
	taskID   string
	streamed bool
	reused   bool // taken from the idle pool (streampool.go)

	mu          sync.Mutex
	sent, ended bool
}

var errStreamEnded = errors.New("mesh: task stream already ended")

func (cs *callStream) write(b []byte) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.ended {
		return errStreamEnded
	}
	_, err := cs.s.Write(b)
	cs.sent = err == nil
	return err
}

// abort ends a call the caller gave up on: a streamed call whose CALL went
// out gets a cancel CONTROL and our FIN, so the serving node stops at once
// instead of waiting out its resume grace; otherwise the stream is reset.
func (cs *callStream) abort() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.ended {
		return
	}
	cs.ended = true
	if cs.streamed && cs.sent && writeCancel(cs.s, cs.taskID, "caller stopped reading") == nil {
		_ = cs.s.CloseWrite()
		_ = cs.s.CloseRead()
		return
	}
	_ = cs.s.Reset()
}

// reset ends a broken stream without a cancel.
func (cs *callStream) reset() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !cs.ended {
		cs.ended = true
		_ = cs.s.Reset()
	}
}

// writeCancel writes one cancellation CONTROL frame.
func writeCancel(s network.Stream, taskID, reason string) error {
	b, err := wire.EncodeCancelNative(&wire.CancelControl{Action: wire.ActionCancel, TaskID: taskID, Reason: reason})
	if err != nil {
		return fmt.Errorf("encoding cancel: %w", err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(cancelWriteGrace))
	return wire.NewFrameWriter(s).WriteFrame(wire.TypeControl, 0, b)
}

// Cancel asks peer p to cancel the streamed task taskID, for a caller that
// lost the task's stream (on a live stream, ending the call's context
// cancels). credential is a consumer token minted for p, or "" (the
// membership credential travels as on a CALL). The answer is the task's
// terminal RESPONSE — `cancelled`, or the outcome it had already reached (a
// late cancel changes nothing) — or an error RESPONSE (not_found for a
// task that is unknown or not the caller's, unauthorized).
func (m *Mesh) Cancel(ctx context.Context, p peer.ID, taskID, reason, credential string) (*wire.Response, error) {
	cc := &wire.CancelControl{Action: wire.ActionCancel, TaskID: taskID, Reason: reason}
	if werr := cc.Check(); werr != nil {
		return nil, werr
	}
	ctx, cancel := context.WithTimeout(ctx, cancelAnswerGrace+callGrace)
	defer cancel()
	s, err := m.h.NewStream(network.WithDialPeerTimeout(ctx, m.cfg.DialTimeout), p, TaskProtocol)
	if err != nil {
		return nil, fmt.Errorf("opening task stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	own, hb := m.ownHeaders()
	if credential != "" {
		if hb, err = cborEnc.Marshal(headersMsg{ConsumerToken: credential, Membership: own}); err != nil {
			return nil, fmt.Errorf("encoding headers: %w", err)
		}
	}
	fw := wire.NewFrameWriter(s)
	if len(hb) > 0 {
		err = fw.WriteFrame(typeHeaders, 0, hb)
	}
	if err == nil {
		err = writeCancel(s, taskID, reason)
	}
	if err == nil {
		err = s.CloseWrite()
	}
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("writing cancel: %w", err)
	}
	resp, err := readCancelAnswer(s, taskID)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.Close()
	if err := m.checkAnswerer(p, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// readCancelAnswer reads the one RESPONSE (or CLOSE) a cancel gets.
func readCancelAnswer(s network.Stream, taskID string) (*wire.Response, error) {
	fr := wire.NewFrameReader(s)
	h, b, err := fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("reading cancel answer: %w", err)
	}
	switch h.Type {
	case wire.TypeResponse:
		resp, werr := wire.DecodeResponseNativeLifecycle(b)
		if werr != nil || (resp.Lifecycle != nil && resp.Lifecycle.TaskID != taskID) {
			return nil, fmt.Errorf("%w: undecodable cancel answer", errProtocol)
		}
		resp.TaskID = taskID
		return resp, nil
	case wire.TypeClose:
		resp := closeResponse(decodeClose(b))
		resp.TaskID = taskID
		return resp, nil
	}
	return nil, fmt.Errorf("%w: frame type %s", errProtocol, h.Type)
}
