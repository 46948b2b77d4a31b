package route

import (
	"context"
	"errors"

	"github.com/meshnode/meshnode/wire"
)

// judge records one attempt, feeds t's circuit breaker and decides whether
// the call is over. Final versus retry is wire.RetryElsewhere's decision;
// judge adds the pacing (§2.2: capacity_exceeded switches without backoff)
// and the breaker bookkeeping (§7.1: load signals and the caller's own
// errors neither open nor close a circuit).
func (r *Router) judge(ctx context.Context, st *run, t Target, resp *wire.Response, sent Sent, err error) (bool, error) {
	key := t.key()
	a := Attempt{Path: t.Path, NodeID: t.NodeID, PeerID: t.PeerID, Endpoint: t.Node.Endpoint,
		Status: sent.HTTPStatus, Encrypted: sent.Encrypted}
	var werr *wire.Error
	if err != nil && errors.As(err, &werr) {
		a.Code = werr.Code
	}
	switch {
	case err != nil && errors.Is(err, ErrNotSent):
		r.breakers.Release(key)
		a.NotSent = true
		st.res.Tried = append(st.res.Tried, a)
		return false, nil
	case err != nil && ctx.Err() != nil:
		r.breakers.Release(key)
		st.res.Tried = append(st.res.Tried, a)
		return false, ctx.Err()
	case err != nil && werr != nil:
		// The call itself is invalid: no node will take it.
		r.breakers.Release(key)
		st.res.Tried = append(st.res.Tried, a)
		return false, werr
	}
	st.res.Attempts++
	if err != nil {
		r.breakers.Failure(key, r.s.now())
		st.res.Tried = append(st.res.Tried, a)
		st.wait = true
		st.lastErr = err
		r.s.logger.Debug("attempt failed", "path", t.Path, "node_id", t.NodeID, "attempt", st.res.Attempts, "error", err)
		return false, nil
	}
	if resp.Error != nil {
		a.Code, a.QoSClass = resp.Error.Code, resp.Error.QoSClass
	}
	st.res.Tried = append(st.res.Tried, a)
	if t.fallback() || !wire.RetryElsewhere(resp) {
		r.settle(key, resp)
		st.res.Response, st.res.Path, st.res.NodeID, st.res.PeerID = resp, t.Path, t.NodeID, t.PeerID
		st.res.Endpoint, st.res.Encrypted = t.Node.Endpoint, sent.Encrypted
		return true, answerError(resp)
	}
	st.last = resp
	switch a.Code {
	case wire.CodeCapacityExceeded:
		r.breakers.Release(key)
		st.wait = false
	case wire.CodeRateLimited, wire.CodeE029:
		r.breakers.Release(key)
		st.wait = true
	default:
		r.breakers.Failure(key, r.s.now())
		st.wait = true
	}
	return false, nil
}

// settle feeds a final answer to the breaker: a success or a 4xx (the
// caller's problem) shows a healthy node; a final 5xx a failing one.
func (r *Router) settle(key string, resp *wire.Response) {
	if resp.Status != wire.StatusSuccess && resp.Error != nil && resp.Error.Status() >= 500 {
		r.breakers.Failure(key, r.s.now())
		return
	}
	r.breakers.Success(key)
}

// answerError is the Go error of a final RESPONSE: nil for a success, the
// RESPONSE's own *wire.Error otherwise.
func answerError(resp *wire.Response) error {
	switch {
	case resp.Status == wire.StatusSuccess:
		return nil
	case resp.Error != nil:
		return resp.Error
	case resp.Status == wire.StatusTimeout:
		return wire.NewError(wire.CodeTaskTimeout, "the node timed out")
	}
	return wire.Errorf(wire.CodeInternal, "the node answered status %q without an error", resp.Status)
}
