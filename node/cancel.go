package node

import (
	"context"

	"github.com/meshnode/meshnode/wire"
)

// Cancel serves a cancellation CONTROL (iicp-service-lifecycle-profile.md
// §5) for a streamed task of this node. The caller is authorized as for a
// CALL of the task's intent (auth carries the node token where a transport
// has one) and must be the task's principal; another caller, and a task
// this node does not know, get not_found alike, so a cancel learns nothing
// about other callers' tasks.
//
// A running task is cancelled and its terminal RESPONSE (`cancelled`, or the
// outcome that won the race) returned once it ends or ctx does; a task that
// had already ended answers its terminal RESPONSE unchanged (LIFECYCLE-14:
// a late cancel is a no-op, a completed task is never reported cancelled).
// The answer never carries the result.
// Before acceptance the task ends rejected (a failed event at sequence 0).
func (e *Engine) Cancel(ctx context.Context, cc *wire.CancelControl, auth *wire.Auth, caller wire.Caller) *wire.Response {
	if cc == nil {
		return cancelFailure("", wire.NewError(wire.CodeValidationError, "empty CONTROL"))
	}
	if werr := cc.Check(); werr != nil {
		return cancelFailure("", werr)
	}
	now := e.set.now()
	rec := e.tasks.lookup(cc.TaskID, now)
	intent := ""
	if rec != nil {
		intent = rec.intent
	}
	how, principal, authErr, why := e.auth.authorize(&wire.Call{Intent: intent, Auth: auth}, caller, now)
	e.met.authResults.WithLabelValues(string(how)).Inc()
	if authErr != nil {
		e.met.cancels.WithLabelValues("denied").Inc()
		e.log.Info("cancel refused", "code", authErr.Code, "transport", caller.Transport, "token_check", errString(why))
		return cancelFailure(cc.TaskID, authErr)
	}
	if rec == nil || rec.principal != principal {
		e.met.cancels.WithLabelValues("not_found").Inc()
		return cancelFailure(cc.TaskID, wire.NewError(wire.CodeNotFound, "no such task on this node"))
	}
	if term := rec.requestCancel(); term != nil {
		e.met.cancels.WithLabelValues("already_terminal").Inc()
		return ack(term)
	}
	e.met.cancels.WithLabelValues("cancelled").Inc()
	e.log.Debug("task cancel requested", "task_id", cc.TaskID, "transport", caller.Transport)
	if term := rec.awaitEnd(ctx); term != nil {
		return ack(term)
	}
	return cancelFailure(cc.TaskID, wire.NewError(wire.CodeUnavailable, "cancellation requested; the task has not ended yet"))
}

// ack is the cancel answer for a task's terminal RESPONSE: its outcome
// and envelope without the result, which never travels outside the task's
// own stream (where IICP-CX seals it).
func ack(term *wire.Response) *wire.Response {
	if term.Error == nil {
		term.Result = nil
	}
	return term
}

func cancelFailure(taskID string, werr *wire.Error) *wire.Response {
	status := wire.StatusError
	return &wire.Response{TaskID: taskID, Status: status, Result: nullResult, Error: werr, Code: werr.Code}
}
