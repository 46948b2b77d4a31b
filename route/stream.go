package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/wire"
)

// Streaming (iicp-service-lifecycle-profile.md): CallStream negotiates the
// service-lifecycle profile with each target whose transport can stream,
// and hands every partial result chunk to the caller's Chunks as it
// arrives. Targets reached over a transport that cannot stream get the
// base CALL and answer once (the whole output then comes in the final
// RESPONSE). The attempt loop is Call's, with one rule added: once a chunk
// has reached the caller, the attempt is final — a failure after that is
// the call's failure, never a retry on another node that would repeat
// output.

// Chunks receives the incremental result chunks of a streamed answer, in
// order. An error stops the call and cancels the task on the serving node
// (a CONTROL cancel on the mesh stream, POST /v1/control on HTTP).
type Chunks func(chunk json.RawMessage) error

// StreamTransport is a Transport that can carry the lifecycle profile:
// SendStream sends call (which requires the profile) and passes the
// accepted and partial events to ev before returning the terminal
// RESPONSE.
type StreamTransport interface {
	SendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc) (*wire.Response, Sent, error)
}

// ResumeTransport is a StreamTransport that can resume a streamed task
// whose stream broke: ResumeStream sends the same CALL asking for the
// events after sequence after.
type ResumeTransport interface {
	ResumeStream(ctx context.Context, t Target, call *wire.Call, credential string, after uint64, ev mesh.EventFunc) (*wire.Response, Sent, error)
}

// Resumption (docs/spec-decisions.md ## service-lifecycle profile): a
// stream that breaks after output is resumed on the same node, at most
// maxResumes times, from the last sequence the caller saw; the node
// replays the rest once (LIFECYCLE-09). A consumer that stopped reading,
// an ended context, or a node that answers (resume_unavailable, any
// terminal event) ends it.
const (
	maxResumes  = 3
	resumePause = 100 * time.Millisecond
)

// CancelTransport is a transport whose streamed task must be cancelled by
// a separate request when the caller gives up (the HTTP bridge: closing
// the connection only starts the node's resume grace). The mesh cancels
// on the task's own stream and needs none.
type CancelTransport interface {
	Cancel(ctx context.Context, t Target, taskID, reason, credential string) error
}

// cancelGrace bounds the cancel request sent after the caller gave up.
const cancelGrace = 3 * time.Second

// streamState is what a streamed attempt has seen.
type streamState struct {
	ev       mesh.EventFunc
	lastSeq  uint64
	seen     bool // lastSeq is set
	consumer bool // the caller's Chunks returned an error
}

// ErrStreamBroken: the answer stopped after some output reached the
// caller; the output is incomplete (§4: a failed outcome).
var ErrStreamBroken = errors.New("route: the answer stream broke after output was delivered")

// CallStream runs call like Call and streams its output to chunks. The
// Result's Response is the terminal RESPONSE; after streamed chunks its
// Result is empty.
func (r *Router) CallStream(ctx context.Context, call *wire.Call, q Query, chunks Chunks) (*Result, error) {
	if chunks == nil {
		return r.Call(ctx, call, q)
	}
	c := *call
	c.Constraints.RequiredProfiles = slices.DeleteFunc(slices.Clone(c.Constraints.RequiredProfiles),
		func(p string) bool { return p == wire.ProfileServiceLifecycle })
	return r.call(ctx, &c, q, chunks)
}

// sendStreamed runs one streamed attempt, or a base one when the transport
// cannot stream.
func (st *run) sendStreamed(ctx context.Context, tr Transport, t Target, attempt *wire.Call, cred string) (*wire.Response, Sent, error) {
	stt, ok := tr.(StreamTransport)
	if !ok {
		return tr.Send(ctx, t, attempt, cred)
	}
	attempt.Constraints.RequiredProfiles = append(slices.Clone(attempt.Constraints.RequiredProfiles), wire.ProfileServiceLifecycle)
	st.stream = streamState{}
	st.stream.ev = func(l wire.Lifecycle, chunk json.RawMessage) error {
		if l.Event == wire.EventPartial && len(chunk) > 0 {
			st.delivered = true
			if err := st.chunks(chunk); err != nil {
				st.stream.consumer = true
				return err
			}
		}
		st.stream.lastSeq, st.stream.seen = l.Sequence, true
		return nil
	}
	return stt.SendStream(ctx, t, attempt, cred, st.stream.ev)
}

// resumeStreamed resumes a streamed attempt that broke after output.
func (r *Router) resumeStreamed(ctx context.Context, st *run, tr Transport, t Target, attempt *wire.Call, sent Sent, err error) (*wire.Response, Sent, error) {
	rt, ok := tr.(ResumeTransport)
	var resp *wire.Response
	for i := 0; ok && err != nil && i < maxResumes && st.stream.seen && !st.stream.consumer; i++ {
		if perr := sleepCtx(ctx, resumePause*time.Duration(i+1)); perr != nil {
			return nil, sent, err
		}
		var cred string
		if r.s.credential != nil {
			if cred, err = r.s.credential(ctx, t, st.call.Intent); err != nil {
				return nil, sent, err
			}
		}
		again := *attempt
		again.CallID = newUUID()
		r.s.logger.Debug("resuming a broken stream", "path", t.Path, "node_id", t.NodeID, "after", st.stream.lastSeq)
		resp, sent, err = rt.ResumeStream(ctx, t, &again, cred, st.stream.lastSeq, st.stream.ev)
		st.res.Resumes++
	}
	return resp, sent, err
}

// cancelAbandoned cancels a streamed attempt the caller gave up on (its
// Chunks failed or its context ended) on transports that need a request
// for it, so the serving node stops generating at once.
func (r *Router) cancelAbandoned(ctx context.Context, st *run, tr Transport, t Target) {
	ct, ok := tr.(CancelTransport)
	if !ok || !st.stream.seen || (!st.stream.consumer && ctx.Err() == nil) {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelGrace)
	defer cancel()
	var cred string
	if r.s.credential != nil {
		var err error
		if cred, err = r.s.credential(cctx, t, st.call.Intent); err != nil {
			r.s.logger.Debug("no credential to cancel an abandoned stream", "path", t.Path, "node_id", t.NodeID, "error", err)
			return
		}
	}
	if err := ct.Cancel(cctx, t, st.call.TaskID, "caller stopped reading", cred); err != nil {
		r.s.logger.Debug("cancelling an abandoned stream failed", "path", t.Path, "node_id", t.NodeID, "error", err)
	}
}

// Cancel implements CancelTransport (POST /v1/control).
func (tr HTTPTransport) Cancel(ctx context.Context, t Target, taskID, reason, credential string) error {
	_, err := httpapi.CancelTask(ctx, tr.HTTP, t.Node, taskID, reason, credential)
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamedFinal ends a call whose attempt already delivered output: its
// outcome is final whatever it is.
func (r *Router) streamedFinal(ctx context.Context, st *run, t Target, resp *wire.Response, sent Sent, err error) error {
	a := Attempt{Path: t.Path, NodeID: t.NodeID, PeerID: t.PeerID, Endpoint: t.Node.Endpoint,
		Status: sent.HTTPStatus, Encrypted: sent.Encrypted}
	st.res.Attempts++
	st.res.Path, st.res.NodeID, st.res.PeerID, st.res.Endpoint = t.Path, t.NodeID, t.PeerID, t.Node.Endpoint
	st.res.Encrypted = sent.Encrypted
	if err != nil {
		r.breakers.Release(t.key())
		st.res.Tried = append(st.res.Tried, a)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrStreamBroken, err)
	}
	if resp.Error != nil {
		a.Code = resp.Error.Code
	}
	st.res.Tried = append(st.res.Tried, a)
	r.settle(t.key(), resp)
	st.res.Response = resp
	return answerError(resp)
}

// SendStream implements StreamTransport over a libp2p task stream.
func (tr MeshTransport) SendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	if t.Peer.PeerID == "" {
		return nil, Sent{}, NotSent(errors.New("mesh target without a peer"))
	}
	return tr.sendStream(ctx, t, call, credential, ev, nil)
}

// ResumeStream implements ResumeTransport: the same CALL on a new task
// stream whose HEADERS carry resume_after.
func (tr MeshTransport) ResumeStream(ctx context.Context, t Target, call *wire.Call, credential string, after uint64, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	if t.Peer.PeerID == "" {
		return nil, Sent{}, NotSent(errors.New("mesh target without a peer"))
	}
	return tr.sendStream(ctx, t, call, credential, ev, &after)
}

func (tr MeshTransport) sendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc, after *uint64) (*wire.Response, Sent, error) {
	opts := mesh.CallOptions{Peer: t.Peer.PeerID, MaxAttempts: 1, Credential: mesh.FixedCredential(credential), OnEvent: ev, ResumeAfter: after}
	resp, _, err := tr.M.Call(ctx, call, opts)
	switch {
	case err == nil:
		return resp, Sent{}, nil
	case errors.Is(err, mesh.ErrNoCandidate), errors.Is(err, mesh.ErrClosed):
		return nil, Sent{}, NotSent(err)
	}
	return resp, Sent{}, err
}

// SendStream implements StreamTransport over POST /v1/task's lifecycle
// event stream (httpapi.PostTaskStream), sealed with IICP-CX as Send is.
func (tr HTTPTransport) SendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	return tr.sendStream(ctx, t, call, credential, ev, nil)
}

// ResumeStream implements ResumeTransport: the same CALL with
// Last-Event-ID (httpapi.ResumeTaskStream).
func (tr HTTPTransport) ResumeStream(ctx context.Context, t Target, call *wire.Call, credential string, after uint64, ev mesh.EventFunc) (*wire.Response, Sent, error) {
	return tr.sendStream(ctx, t, call, credential, ev, &after)
}

func (tr HTTPTransport) sendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc, after *uint64) (*wire.Response, Sent, error) {
	var resp *wire.Response
	var st httpapi.PostStatus
	var err error
	if after != nil {
		resp, st, err = httpapi.ResumeTaskStream(ctx, tr.HTTP, t.Node, call, credential, t.Plaintext, *after, httpapi.EventFunc(ev))
	} else {
		resp, st, err = httpapi.PostTaskStream(ctx, tr.HTTP, t.Node, call, credential, t.Plaintext, httpapi.EventFunc(ev))
	}
	sent := Sent{HTTPStatus: st.HTTPStatus, Encrypted: st.Encrypted}
	var werr *wire.Error
	if err != nil && errors.As(err, &werr) && resp == nil && st.HTTPStatus == 0 {
		return nil, sent, NotSent(err)
	}
	return resp, sent, err
}
