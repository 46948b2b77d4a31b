package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// This file is the serving node's memory of streamed tasks
// (iicp-service-lifecycle-profile.md §5, fixture service-lifecycle-v1.json
// LIFECYCLE-09..14; docs/spec-decisions.md ## service-lifecycle profile):
// each task run under the profile keeps a bounded log of its events while
// it runs and for ResumeWindow.TTL after its terminal event, so that
//
//   - a caller that lost its stream resumes after the last sequence it saw
//     and gets the remaining events, each once (LIFECYCLE-09), or
//     resume_unavailable once they are gone (LIFECYCLE-10);
//   - the same CALL sent again (same task_id, idempotency key, request and
//     principal) follows the known task instead of executing it again
//     (LIFECYCLE-11); a different request under that task_id is a
//     conflict (LIFECYCLE-12);
//   - a cancel after the terminal event answers that event (LIFECYCLE-14).
//
// The log holds the events' result chunks (the caller's own answer, which
// it may need to see again) and never the prompt: a request is remembered
// by its digest only. Memory is bounded by Tasks × (Events, Bytes).

// ResumeWindow bounds what the engine keeps of streamed tasks.
type ResumeWindow struct {
	// Tasks is how many streamed tasks are remembered at once; a task
	// started beyond it runs without a log (it cannot be resumed).
	Tasks int
	// Events and Bytes bound one task's retained events and their result
	// bytes; the oldest are dropped first.
	Events int
	Bytes  int
	// TTL is how long an ended task's events stay.
	TTL time.Duration
	// Grace is how long a task whose caller's stream broke (not a cancel)
	// runs on awaiting a resume before it is cancelled.
	Grace time.Duration
}

// DefaultResumeWindow is the engine's ResumeWindow.
var DefaultResumeWindow = ResumeWindow{Tasks: 256, Events: 4096, Bytes: 1 << 20, TTL: 2 * time.Minute, Grace: 10 * time.Second}

// logEvent is one retained non-terminal event.
type logEvent struct {
	l     wire.Lifecycle
	chunk json.RawMessage
}

// taskRec is one streamed task.
type taskRec struct {
	id, intent, principal string
	digest                [sha256.Size]byte
	grace                 time.Duration
	maxBytes              int // ResumeWindow.Bytes

	mu       sync.Mutex
	events   []logEvent
	first    uint64 // sequence of events[0]; next when events is empty
	next     uint64 // sequence of the next event
	bytes    int
	terminal *wire.Response
	lostTail bool // the terminal result exceeded maxBytes and was not kept
	endedAt  time.Time
	wake     chan struct{} // closed and replaced when an event is added or the task ends
	cancel   context.CancelCauseFunc
	subs     int
	timer    *time.Timer
}

// taskLog is the set of streamed tasks.
type taskLog struct {
	win   ResumeWindow
	mu    sync.Mutex
	tasks map[string]*taskRec
	ended []*taskRec // in end order, which is expiry order
}

func newTaskLog(win ResumeWindow) *taskLog {
	return &taskLog{win: win, tasks: make(map[string]*taskRec)}
}

// requestDigest binds a task_id to what defines the task (§5: intent,
// payload, constraints that shape the output, idempotency key). The
// attempt-scoped fields (call_id, timeout_ms, credentials) are left out.
func requestDigest(c *wire.Call) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, f := range [][]byte{[]byte(c.Intent), []byte(c.Model), []byte(c.IdempotencyKey), c.Payload} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	binary.BigEndian.PutUint64(n[:], uint64(c.Constraints.MaxTokens))
	h.Write(n[:])
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// open returns call's task: the known one (existing), or a new record with
// its caller attached; nil when the log is full of running tasks.
func (tl *taskLog) open(call *wire.Call, principal string, now time.Time) (rec *taskRec, existing bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.sweep(now)
	if r, ok := tl.tasks[call.TaskID]; ok {
		return r, true
	}
	if len(tl.tasks) >= tl.win.Tasks && len(tl.ended) > 0 {
		tl.evictOldest()
	}
	if len(tl.tasks) >= tl.win.Tasks {
		return nil, false
	}
	rec = &taskRec{id: call.TaskID, intent: call.Intent, principal: principal, digest: requestDigest(call),
		grace: tl.win.Grace, maxBytes: tl.win.Bytes, wake: make(chan struct{}), subs: 1}
	tl.tasks[call.TaskID] = rec
	return rec, false
}

// lookup returns the remembered task id, or nil.
func (tl *taskLog) lookup(id string, now time.Time) *taskRec {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.sweep(now)
	return tl.tasks[id]
}

// end records rec's terminal event. A task that was never accepted is
// forgotten (it never ran; the caller may submit it again).
func (tl *taskLog) end(rec *taskRec, resp *wire.Response, accepted bool, now time.Time) {
	if rec == nil {
		return
	}
	rec.finish(resp, now)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if !accepted {
		if tl.tasks[rec.id] == rec {
			delete(tl.tasks, rec.id)
		}
		return
	}
	tl.ended = append(tl.ended, rec)
}

// size is the number of remembered streamed tasks.
func (tl *taskLog) size() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.tasks)
}

func (tl *taskLog) sweep(now time.Time) {
	for len(tl.ended) > 0 && now.Sub(tl.ended[0].endedAt) >= tl.win.TTL {
		tl.evictOldest()
	}
}

func (tl *taskLog) evictOldest() {
	r := tl.ended[0]
	tl.ended[0] = nil
	tl.ended = tl.ended[1:]
	if tl.tasks[r.id] == r {
		delete(tl.tasks, r.id)
	}
}

// add appends a non-terminal event, dropping the oldest beyond the bounds.
func (r *taskRec) add(l wire.Lifecycle, chunk json.RawMessage, win ResumeWindow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.events) == 0 {
		r.first = l.Sequence
	}
	r.events = append(r.events, logEvent{l: l, chunk: chunk})
	r.bytes += len(chunk)
	r.next = l.Sequence + 1
	for len(r.events) > 0 && (len(r.events) > win.Events || r.bytes > win.Bytes) {
		r.bytes -= len(r.events[0].chunk)
		r.events[0] = logEvent{}
		r.events = r.events[1:]
		r.first++
	}
	if len(r.events) == 0 {
		r.first = r.next
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// finish records the terminal RESPONSE and wakes every follower.
func (r *taskRec) finish(resp *wire.Response, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := *resp
	if len(t.Result) > r.maxBytes {
		// A whole buffered answer (a backend that does not stream) beyond
		// the per-task bound is not kept: followers get resume_unavailable.
		t.Result, r.lostTail = nil, true
	}
	r.terminal, r.endedAt = &t, now
	if r.timer != nil {
		r.timer.Stop()
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// setCancel installs the function that cancels the task's execution.
func (r *taskRec) setCancel(cancel context.CancelCauseFunc) {
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
}

// attach counts a caller following the task; it stops a pending grace.
func (r *taskRec) attach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs++
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// detach uncounts a caller; the last one gone starts the resume grace,
// after which the task is cancelled (our choice over LIFECYCLE-13's
// "state unchanged": an answer nobody reads is wasted compute).
func (r *taskRec) detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs--
	if r.subs > 0 || r.terminal != nil || r.cancel == nil {
		return
	}
	cancel := r.cancel
	r.timer = time.AfterFunc(r.grace, func() { cancel(wire.ErrCallerLost) })
}

// requestCancel cancels a running task; it reports the terminal RESPONSE
// when the task had already ended (a late cancel changes nothing).
func (r *taskRec) requestCancel() *wire.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.terminal != nil {
		t := *r.terminal
		return &t
	}
	if r.cancel != nil {
		r.cancel(wire.ErrCancelRequested)
	}
	return nil
}

// awaitEnd waits for the terminal RESPONSE, or ctx.
func (r *taskRec) awaitEnd(ctx context.Context) *wire.Response {
	for {
		r.mu.Lock()
		term, wake := r.terminal, r.wake
		r.mu.Unlock()
		if term != nil {
			t := *term
			return &t
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// follow replays the events after `after` (all of them when nil) to emit,
// then the live ones, and returns the terminal RESPONSE. Events dropped
// from the log before the caller saw them make the resume unavailable.
func (r *taskRec) follow(ctx context.Context, after *uint64, emit Emit) (*wire.Response, *wire.Error) {
	cursor := uint64(0)
	if after != nil {
		cursor = *after + 1
	}
	for {
		r.mu.Lock()
		term, wake, next := r.terminal, r.wake, r.next
		if cursor < r.first || (term != nil && r.lostTail) {
			r.mu.Unlock()
			return nil, errResumeUnavailable()
		}
		var batch []logEvent
		if cursor < next {
			batch = append(batch, r.events[cursor-r.first:]...)
		}
		r.mu.Unlock()
		if cursor > next && term == nil {
			return nil, wire.NewError(wire.CodeValidationError, "resume point is beyond the task's last event")
		}
		for _, ev := range batch {
			if err := emit(ev.l, ev.chunk); err != nil {
				return nil, wire.NewError(wire.CodeUnavailable, "caller stopped reading")
			}
			cursor = ev.l.Sequence + 1
		}
		if term != nil {
			t := *term
			return &t, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, wire.NewError(wire.CodeUnavailable, "caller stopped reading")
		}
	}
}

func errResumeUnavailable() *wire.Error {
	return wire.NewError(wire.CodeResumeUnavailable, "the task's events after that sequence are no longer kept; submit a new task")
}
