package wire

// This file is the receiving side of the service-lifecycle profile: the
// state table of fixtures/profiles/service-lifecycle-v1.json and the §4
// receiver rules (discard a sequence not above the last, no event after a
// terminal one, is_final exactly on terminal states).

// Lifecycle states. The wire events map onto them: partial is streaming,
// timed_out is the deprecated alias of expired, and a failure before
// acceptance is rejected.
const (
	StateSubmitted = "submitted"
	StateAccepted  = "accepted"
	StateQueued    = "queued"
	StateRunning   = "running"
	StateWaiting   = "waiting"
	StateStreaming = "streaming"
	StateRejected  = "rejected"
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	StateExpired   = "expired"
)

// LifecycleTransitions is the profile's state table (fixture
// "transitions"): the states allowed after each state.
var LifecycleTransitions = map[string][]string{
	StateSubmitted: {StateAccepted, StateRejected, StateExpired},
	StateAccepted:  {StateQueued, StateRunning, StateCompleted, StateCancelled, StateFailed, StateExpired},
	StateQueued:    {StateRunning, StateWaiting, StateCancelled, StateFailed, StateExpired},
	StateRunning:   {StateWaiting, StateStreaming, StateCompleted, StateCancelled, StateFailed, StateExpired},
	StateWaiting:   {StateQueued, StateRunning, StateCancelled, StateFailed, StateExpired},
	StateStreaming: {StateStreaming, StateWaiting, StateCompleted, StateCancelled, StateFailed, StateExpired},
	StateRejected:  {},
	StateCompleted: {},
	StateFailed:    {},
	StateCancelled: {},
	StateExpired:   {},
}

// Receiver verdicts (the fixture's "expected" names).
const (
	LifecycleOK            = ""
	LifecycleDuplicate     = "deduplicate"
	LifecycleAfterTerminal = "event_after_terminal"
	LifecycleSequenceGap   = "sequence_gap"
	LifecycleFlagMismatch  = "terminal_flag_mismatch"
	LifecycleBadTransition = "invalid_transition"
	LifecycleTaskMismatch  = "task_mismatch"
)

// stateOf maps a wire event or state name onto the state table.
func stateOf(ev, from string) string {
	switch ev {
	case EventPartial:
		return StateStreaming
	case EventTimedOut:
		return StateExpired
	case EventFailed:
		if from == StateSubmitted {
			return StateRejected
		}
	}
	return ev
}

func terminalState(s string) bool {
	switch s {
	case StateRejected, StateCompleted, StateFailed, StateCancelled, StateExpired:
		return true
	}
	return false
}

// LifecycleReceiver follows one task's events in arrival order. The zero
// value is not usable; NewLifecycleReceiver starts it in submitted.
type LifecycleReceiver struct {
	taskID string
	state  string
	next   uint64
}

// NewLifecycleReceiver starts following taskID.
func NewLifecycleReceiver(taskID string) *LifecycleReceiver {
	return &LifecycleReceiver{taskID: taskID, state: StateSubmitted}
}

// ResumeLifecycleReceiver follows taskID on a resumed stream whose caller
// already accepted every event up to sequence after: the next event must
// be after+1. after 0 is the accepted event; later ones were partials.
func ResumeLifecycleReceiver(taskID string, after uint64) *LifecycleReceiver {
	state := StateStreaming
	if after == 0 {
		state = StateAccepted
	}
	return &LifecycleReceiver{taskID: taskID, state: state, next: after + 1}
}

// Next is the sequence the next new event must carry: the last accepted
// one plus one (0 before any).
func (r *LifecycleReceiver) Next() uint64 { return r.next }

// State is the state reached so far.
func (r *LifecycleReceiver) State() string { return r.state }

// Done reports whether a terminal event was accepted.
func (r *LifecycleReceiver) Done() bool { return terminalState(r.state) }

// Accept applies one event. LifecycleOK: deliver it; LifecycleDuplicate:
// discard it silently (§4: a sequence not above the last accepted one);
// any other verdict is a protocol violation the caller treats as a failed
// outcome (§4: a missing sequence is failed, no resumption).
func (r *LifecycleReceiver) Accept(ev string, seq uint64, isFinal bool) string {
	if r.next > 0 && seq < r.next {
		return LifecycleDuplicate
	}
	if terminalState(r.state) {
		return LifecycleAfterTerminal
	}
	if seq != r.next {
		return LifecycleSequenceGap
	}
	to := stateOf(ev, r.state)
	if isFinal != terminalState(to) {
		return LifecycleFlagMismatch
	}
	// The profile text (§3) lets accepted go straight to streaming; the
	// fixture's table routes it through running. Both are accepted.
	direct := r.state == StateAccepted && to == StateStreaming
	if !direct && !hasString(LifecycleTransitions[r.state], to) {
		return LifecycleBadTransition
	}
	r.state, r.next = to, seq+1
	return LifecycleOK
}

// AcceptEnvelope applies l (with its task check).
func (r *LifecycleReceiver) AcceptEnvelope(l *Lifecycle) string {
	if l.TaskID != r.taskID {
		return LifecycleTaskMismatch
	}
	return r.Accept(l.Event, l.Sequence, l.IsFinal)
}
