package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
// order. An error stops the call (the stream is reset, which cancels the
// backend request on the serving node).
type Chunks func(chunk json.RawMessage) error

// StreamTransport is a Transport that can carry the lifecycle profile:
// SendStream sends call (which requires the profile) and passes the
// accepted and partial events to ev before returning the terminal
// RESPONSE.
type StreamTransport interface {
	SendStream(ctx context.Context, t Target, call *wire.Call, credential string, ev mesh.EventFunc) (*wire.Response, Sent, error)
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
	ev := func(l wire.Lifecycle, chunk json.RawMessage) error {
		if l.Event != wire.EventPartial || len(chunk) == 0 {
			return nil
		}
		st.delivered = true
		return st.chunks(chunk)
	}
	return stt.SendStream(ctx, t, attempt, cred, ev)
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
	opts := mesh.CallOptions{Peer: t.Peer.PeerID, MaxAttempts: 1, Credential: mesh.FixedCredential(credential), OnEvent: ev}
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
	resp, st, err := httpapi.PostTaskStream(ctx, tr.HTTP, t.Node, call, credential, t.Plaintext, httpapi.EventFunc(ev))
	sent := Sent{HTTPStatus: st.HTTPStatus, Encrypted: st.Encrypted}
	var werr *wire.Error
	if err != nil && errors.As(err, &werr) && resp == nil && st.HTTPStatus == 0 {
		return nil, sent, NotSent(err)
	}
	return resp, sent, err
}
