package route

import (
	"context"
	"errors"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// run is the state of one Call.
type run struct {
	call *wire.Call
	q    Query
	res  *Result
	seen map[string]bool
	// candidates counts targets offered by finders; findErr is the last
	// finder error (a *wire.Error wins over others).
	candidates int
	findErr    error
	// wait: the next attempt backs off first (the last one failed
	// transiently; capacity_exceeded and not-sent switch at once).
	wait bool
	last *wire.Response
	// chunks streams the answer (CallStream; nil: buffered); delivered
	// reports that a chunk reached it.
	chunks    Chunks
	delivered bool
	// stream is the resume state of a streamed attempt (stream.go).
	stream streamState
	// lastErr is the last attempt's transport failure (no RESPONSE).
	lastErr error
	// credErr is an IICP error the credential hook gave for a skipped
	// target (why this node may not send there), reported when no target
	// was tried at all.
	credErr *wire.Error
	// echo holds echo-only targets, tried after every other (wire.EchoModel).
	echo []Target
	// fallingBack: the fallback transport is being tried (its answer is final).
	fallingBack bool
	// localTried: this node was tried first (WithLocal).
	localTried bool
}

// Call runs call on the best target that gives a final answer: targets in
// finder order, each attempt with a fresh call_id and the same task_id
// (iicp-framing.md §4.3), at most the configured attempts, skipping
// targets whose circuit is open.
//
// Outcomes (PROXY-ERR-01/02):
//   - success: Result.Response is the RESPONSE and err is nil;
//   - a final failure RESPONSE (validation, unauthorized, backend_error…,
//     wire.RetryElsewhere false): Result.Response is that RESPONSE and err
//     its *wire.Error, so a 401 is a Go error, never a silent nil;
//   - no candidate at all: the finders' error (IICP-E064 when every node is
//     keyless, the directory's error when it is unreachable), else IICP-E033;
//   - candidates but none tried because the credential hook refused them
//     with an IICP error: that error;
//   - candidates but no final answer: no_available_node, with the last
//     RESPONSE (if any) in Result.Response;
//   - the context ended: its error.
//
// The fallback transport (WithFallback) serves when no candidate gave a
// final answer, before any of these errors, unless Query.Remote keeps the
// call off this node.
func (r *Router) Call(ctx context.Context, call *wire.Call, q Query) (*Result, error) {
	return r.call(ctx, call, q, nil)
}

func (r *Router) call(ctx context.Context, call *wire.Call, q Query, chunks Chunks) (*Result, error) {
	st := &run{call: call, q: q, res: &Result{}, seen: map[string]bool{}, chunks: chunks}
	if st.q.Intent == "" {
		st.q.Intent = call.Intent
	}
	if st.q.Model == "" {
		st.q.Model = call.Model
	}
	if st.q.QoS == "" {
		st.q.QoS = call.Constraints.QoS
	}
	if st.q.Region == "" {
		st.q.Region = call.Constraints.Region
	}
	if werr := wire.ValidateCall(call); werr != nil {
		return st.res, werr
	}
	for _, f := range r.finders {
		if st.res.Attempts >= r.s.attempts {
			break
		}
		targets, err := f.Find(ctx, st.q)
		if err != nil {
			st.noteFindErr(err)
			r.s.logger.Debug("finder failed", "error", err)
		}
		if done, err := r.tryLocalFirst(ctx, st, targets); done || err != nil {
			return st.res, err
		}
		if done, err := r.tryAll(ctx, st, targets, true); done || err != nil {
			return st.res, err
		}
	}
	if done, err := r.tryLocalFirst(ctx, st, nil); done || err != nil {
		return st.res, err
	}
	// Echo nodes only when no real model gave a final answer.
	if done, err := r.tryAll(ctx, st, st.echo, false); done || err != nil {
		return st.res, err
	}
	return r.finish(ctx, st)
}

// tryAll tries targets in order within the attempt budget; deferEcho sets
// echo-only targets aside (st.echo) for after every other.
func (r *Router) tryAll(ctx context.Context, st *run, targets []Target, deferEcho bool) (bool, error) {
	for _, t := range targets {
		if st.res.Attempts >= r.s.attempts {
			break
		}
		if t.Echo && deferEcho {
			st.echo = append(st.echo, t)
			continue
		}
		done, err := r.try(ctx, st, t)
		if done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// tryLocalFirst serves the call on this node (WithLocal) once, when it
// serves the intent and is at least as good as the best non-echo target
// found so far (or none was found).
func (r *Router) tryLocalFirst(ctx context.Context, st *run, targets []Target) (bool, error) {
	if st.localTried || r.s.local == nil || st.q.Remote || st.res.Attempts >= r.s.attempts {
		return false, nil
	}
	v, ok := r.s.localValue(st.call)
	if !ok {
		return false, nil
	}
	for _, t := range targets {
		if !t.Echo {
			if t.Score > v {
				return false, nil
			}
			break
		}
	}
	st.localTried = true
	return r.try(ctx, st, Target{Path: PathLocal, NodeID: "self"})
}

func (st *run) noteFindErr(err error) {
	var werr *wire.Error
	if st.findErr == nil || errors.As(err, &werr) {
		st.findErr = err
	}
}

// finish ends a call that got no final answer from any candidate.
func (r *Router) finish(ctx context.Context, st *run) (*Result, error) {
	if err := ctx.Err(); err != nil {
		st.res.Response = st.last
		return st.res, err
	}
	if r.s.fallback != nil && !st.q.Remote {
		st.fallingBack = true
		done, err := r.try(ctx, st, Target{Path: PathLocal})
		if done || err != nil {
			return st.res, err
		}
	}
	st.res.Response = st.last
	var werr *wire.Error
	switch {
	case st.candidates == 0 && errors.As(st.findErr, &werr):
		return st.res, st.findErr
	case st.candidates == 0 && st.findErr != nil:
		return st.res, wire.Errorf(wire.CodeE033, "no mesh peer serves %s, and no directory could be asked (%v)", st.q.Intent, st.findErr)
	case st.candidates == 0:
		return st.res, wire.Errorf(wire.CodeE033, "no node serves %s", st.q.Intent)
	case st.res.Attempts == 0 && st.credErr != nil:
		return st.res, st.credErr
	}
	last := "no answer"
	switch {
	case st.last != nil && st.last.Error != nil:
		last = lastAnswer(st.last)
	case st.lastErr != nil:
		last = st.lastErr.Error()
	}
	return st.res, wire.Errorf(wire.CodeNoAvailableNode, "%d candidate node(s), %d attempt(s), none completed the task (last: %s)",
		st.candidates, st.res.Attempts, last)
}

// lastAnswerMax caps the node-supplied message quoted in an error.
const lastAnswerMax = 160

// lastAnswer says what the last node answered (an unknown model, a dead
// backend), so no_available_node is not the only thing a user learns. The
// node's message is stripped of control characters and capped: it is a
// peer's text, shown on a terminal.
func lastAnswer(last *wire.Response) string {
	if last == nil || last.Error == nil {
		return ""
	}
	msg := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, last.Error.Message)
	if r := []rune(msg); len(r) > lastAnswerMax {
		msg = string(r[:lastAnswerMax])
	}
	return string(last.Error.Code) + ": " + msg
}

// transport picks the transport for t.
func (r *Router) transport(t Target) Transport {
	if t.Path == PathLocal && r.s.local != nil && !t.fallback() {
		return r.s.local
	}
	if t.Path == PathLocal {
		return r.s.fallback
	}
	return r.s.transports[t.Path]
}

// try runs one attempt on t. done reports a final answer (in st.res); err
// ends the call (the call is invalid, or the context ended).
func (r *Router) try(ctx context.Context, st *run, t Target) (done bool, err error) {
	key := t.key()
	tr := r.transport(t)
	if st.seen[key] || tr == nil || (r.s.skip != nil && t.Path != PathLocal && r.s.skip(t)) {
		return false, nil
	}
	st.seen[key] = true
	st.candidates++
	if !r.breakers.Allow(key, r.s.now()) {
		return false, nil // §7.1: skip a node whose circuit is open
	}
	var cred string
	if r.s.credential != nil && t.Path != PathLocal {
		if cred, err = r.s.credential(ctx, t, st.call.Intent); err != nil {
			r.breakers.Release(key)
			r.s.logger.Debug("no credential for target", "path", t.Path, "node_id", t.NodeID, "error", err)
			var werr *wire.Error
			if errors.As(err, &werr) {
				st.credErr = werr
			}
			return false, ctx.Err()
		}
	}
	if st.wait && st.res.Attempts > 0 {
		if err := r.pause(ctx, st.res.Attempts+1); err != nil {
			r.breakers.Release(key)
			return false, err
		}
	}
	attempt := *st.call
	attempt.CallID = newUUID()
	start := r.s.now()
	if st.chunks == nil {
		resp, sent, err := tr.Send(ctx, t, &attempt, cred)
		r.observe(st, t, start, resp)
		return r.judge(ctx, st, t, resp, sent, err)
	}
	resp, sent, err := st.sendStreamed(ctx, tr, t, &attempt, cred)
	if st.delivered && err != nil {
		resp, sent, err = r.resumeStreamed(ctx, st, tr, t, &attempt, sent, err)
	}
	if err != nil {
		r.cancelAbandoned(ctx, st, tr, t)
	}
	r.observe(st, t, start, resp)
	if st.delivered {
		return true, r.streamedFinal(ctx, st, t, resp, sent, err)
	}
	return r.judge(ctx, st, t, resp, sent, err)
}
