package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// Resolver maps an intent (and optional pinned model) to the backend that
// serves it. node/backend.Router implements it; the engine declares only
// what it uses.
type Resolver interface {
	// Resolve returns the backend and a request template (Intent, Model,
	// Mode, MaxTokens filled) or backend.ErrUnknownIntent / ErrUnknownModel.
	Resolve(intent, model string) (backend.Backend, backend.Request, error)
	// Capabilities lists what the node serves (health, metric labels).
	Capabilities() []wire.Capability
}

// Engine runs CALLs: authorization, validation, idempotency, admission,
// deadline, backend execution and metrics. It is safe for concurrent use by
// every transport.
type Engine struct {
	cfg      Config
	set      settings
	log      *slog.Logger
	resolver Resolver
	auth     *authorizer
	admit    *admission
	idem     *idempotency
	tasks    *taskLog
	met      *metrics
	intents  map[string]struct{} // served intents: the only intent label values
	started  time.Time

	ewmaMs   atomic.Int64    // smoothed task duration, for retry_after_ms
	served   sync.Map        // outcome label → *atomic.Uint64 (Stats)
	outcomes outcomeCounters // heartbeat metrics batches (Outcomes)
	health   healthCache
	running  sync.WaitGroup // backend goroutines, so Close can wait for them
}

// New builds an engine for the node described by cfg, serving what resolver
// resolves.
func New(cfg Config, resolver Resolver, opts ...Option) (*Engine, error) {
	if resolver == nil {
		return nil, errors.New("node: nil resolver")
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("node: max_concurrent %d < 0", cfg.MaxConcurrent)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	set := defaultSettings()
	for _, o := range opts {
		if err := o(&set); err != nil {
			return nil, fmt.Errorf("node: option: %w", err)
		}
	}
	e := &Engine{
		cfg:      cfg,
		set:      set,
		log:      set.logger.With("component", "engine"),
		resolver: resolver,
		admit:    newAdmission(cfg.MaxConcurrent),
		idem:     newIdempotency(set.idemTTL, set.idemCap),
		tasks:    newTaskLog(set.resume),
		intents:  make(map[string]struct{}),
		started:  set.now(),
	}
	e.auth = &authorizer{open: set.openMode, consumer: NewConsumerTokenVerifier(set.dirKeys...)}
	e.auth.setNodeToken(cfg.NodeToken)
	e.auth.setNodeID(cfg.NodeID)
	e.auth.setPeers(set.allowPeers)
	for _, c := range resolver.Capabilities() {
		e.intents[c.Intent] = struct{}{}
	}
	met, err := newMetrics(set.registerer, func() float64 { return float64(e.idem.size()) })
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	e.met = met
	e.met.maxConc.Set(float64(cfg.MaxConcurrent))
	if set.openMode {
		e.log.Warn("open mode: every CALL is accepted without credentials")
	}
	return e, nil
}

// SetNodeToken replaces the node's own token (the directory rotates it on
// re-registration). Empty disables node-token callers.
func (e *Engine) SetNodeToken(tok string) { e.auth.setNodeToken(tok) }

// SetNodeID sets the node_id assigned at registration.
func (e *Engine) SetNodeID(id string) { e.auth.setNodeID(id) }

// SetDirectoryKeys replaces the directory keys consumer tokens are checked against.
func (e *Engine) SetDirectoryKeys(keys ...ed25519.PublicKey) { e.auth.consumer.SetKeys(keys...) }

// SetPeerAllowlist replaces the libp2p peer IDs authorized without a token.
func (e *Engine) SetPeerAllowlist(peerIDs ...string) { e.auth.setPeers(peerIDs) }

// Wait blocks until every backend call the engine started has returned, or
// ctx ends. Transports call it on shutdown after they stop accepting CALLs.
func (e *Engine) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { e.running.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Execute runs one CALL and always returns a RESPONSE. On failure Status is
// "error" or "timeout", Result is null and Error carries the IICP code whose
// HTTPStatus the transport uses.
func (e *Engine) Execute(ctx context.Context, call *wire.Call, caller wire.Caller) *wire.Response {
	// A buffered RESPONSE cannot honour the lifecycle profile: a CALL that
	// requires it must come through ExecuteStream (stream.go).
	return e.executeProfiles(ctx, call, caller, nil)
}

// executeProfiles runs call on a transport that serves the profiles in
// supported; a CALL requiring another one is refused before acceptance
// (iicp-service-lifecycle-profile.md §2).
func (e *Engine) executeProfiles(ctx context.Context, call *wire.Call, caller wire.Caller, supported []string) *wire.Response {
	start := e.set.now()
	if call == nil {
		return e.finish(&wire.Call{}, caller, start, "", failure(wire.NewError(wire.CodeValidationError, "empty CALL")))
	}
	if p := wire.UnsupportedProfile(call, supported); p != "" {
		return e.finish(call, caller, start, "", failure(wire.NewError(wire.CodeUnsupportedProfile,
			"a required profile is not served on this transport").WithField("constraints.required_profiles")))
	}
	qos, out := e.execute(ctx, call, caller, start)
	return e.finish(call, caller, start, qos, out)
}

// outcome is what execute decided, before it becomes a RESPONSE.
type outcome struct {
	res     backend.Result
	err     *wire.Error
	timeout bool
	ai      bool
}

func failure(err *wire.Error) outcome { return outcome{err: err} }

// execute applies the rules in order. Authorization comes first so an
// unauthenticated caller learns nothing about validation or capacity, and
// can never reserve (poison) a task_id.
func (e *Engine) execute(ctx context.Context, call *wire.Call, caller wire.Caller, start time.Time) (string, outcome) {
	if _, out, ok := e.gate(call, caller, start); !ok {
		return "", out
	}
	return e.executeValid(ctx, call, start)
}

// gate authorizes and validates call; ok=false carries the refusal. The
// principal is who was authorized (auth.go principalOf).
func (e *Engine) gate(call *wire.Call, caller wire.Caller, start time.Time) (string, outcome, bool) {
	how, principal, authErr, why := e.auth.authorize(call, caller, start)
	e.met.authBy.get(string(how)).Inc()
	if authErr != nil {
		// why is a sentinel; it names the check that failed, never the token.
		e.log.Info("task refused", "code", authErr.Code, "transport", caller.Transport, "token_check", errString(why))
		return "", failure(authErr), false
	}
	if verr := validateCall(call); verr != nil {
		return "", failure(verr), false
	}
	return principal, outcome{}, true
}

// executeValid runs an authorized, valid call: CX check, routing,
// idempotency, admission, backend.
func (e *Engine) executeValid(ctx context.Context, call *wire.Call, start time.Time) (string, outcome) {
	qos := call.Constraints.QoS
	if qos == "" {
		qos = DefaultQoS
	}
	if len(call.Conf) > 0 {
		// An IICP-CX envelope reaches the engine only when no transport
		// opened it: this node is not CX-capable (iicp-confidentiality.md §6,
		// Tier 1 collapsed error model: IICP-E050).
		return qos, failure(wire.NewError(wire.CodeE050, "confidential task not supported by this node"))
	}
	be, req, err := e.resolver.Resolve(call.Intent, call.Model)
	if err != nil {
		return qos, failure(resolveError(err))
	}
	if m := call.Constraints.MaxTokens; m > 0 && (req.MaxTokens == 0 || m < req.MaxTokens) {
		// The CALL may lower the route's output cap, never raise it.
		req.MaxTokens = m
	}
	budget := time.Duration(call.Constraints.TimeoutMs) * time.Millisecond
	ctx, cancel := context.WithDeadline(ctx, start.Add(budget))
	defer cancel()

	gen, fresh := e.idem.reserve(call.TaskID, start)
	if !fresh {
		return qos, failure(wire.NewError(wire.CodeConflict, "duplicate task_id"))
	}
	if out, ok := e.admitCall(ctx, call, qos, budget, start); !ok {
		// The task never ran: forget its task_id so the caller may retry it.
		e.idem.cancel(call.TaskID, gen)
		return qos, out
	}
	req.Payload = call.Payload
	if call.Trace != nil {
		req.TraceID = call.Trace.TraceID // forwarded to the backend (iicp-semantics.md §10.1)
	}
	return qos, e.run(ctx, be, req, call.TaskID)
}

// admitCall takes a concurrency slot, waiting at most the class's bounded
// wait (never more than MaxAdmissionWaitShare of the budget). ok=false
// carries the capacity_exceeded / timeout outcome.
func (e *Engine) admitCall(ctx context.Context, call *wire.Call, qos string, budget time.Duration, start time.Time) (outcome, bool) {
	wait := min(e.set.qosWait[qos], time.Duration(float64(budget)*MaxAdmissionWaitShare))
	err := e.admit.acquire(ctx, rankOf(call.Constraints.Priority, qos), wait)
	if err == nil {
		e.met.active.Inc()
		e.met.admitWaitBy.get(qosLabel(qos)).Observe(e.set.now().Sub(start).Seconds())
		return outcome{}, true
	}
	if errors.Is(err, errNoSlot) {
		e.met.rejected.WithLabelValues(qosLabel(qos)).Inc()
		ce := wire.NewError(wire.CodeCapacityExceeded, "all concurrency slots are busy")
		ce.QoSClass = qos
		ce.RetryAfterMs = e.retryAfter().Milliseconds()
		return failure(ce), false
	}
	return ctxOutcome(ctx), false
}

// run executes the backend in its own goroutine so the deadline is enforced
// even if a backend ignores ctx, and a panic is contained. The slot is
// released when the backend actually returns, not when we answer: a backend
// still busy after the deadline still occupies capacity.
//
// A backend that promises to return once ctx ends (ctxBound) runs on the
// caller's goroutine instead: the deadline then holds through the backend
// itself, and the task path saves a goroutine, its stack growth and a
// channel hand-off per CALL (issue 11 item 9).
func (e *Engine) run(ctx context.Context, be backend.Backend, req backend.Request, taskID string) outcome {
	if st, ok := backend.SinkFrom(ctx).(*streamer); ok {
		st.accept() // the slot is ours: the task is accepted (stream.go)
	}
	if cb, ok := be.(ctxBound); ok && cb.ReturnsOnCancel() {
		return e.runInline(ctx, be, req, taskID)
	}
	type result struct {
		res backend.Result
		err error
	}
	done := make(chan result, 1)
	e.running.Add(1)
	go func() {
		defer e.running.Done()
		res, err := e.callBackend(ctx, be, req, taskID)
		// Release before answering, so a caller that sends its next CALL as
		// soon as it has this RESPONSE always finds the slot free.
		e.met.active.Dec()
		e.admit.release()
		done <- result{res: res, err: err}
	}()
	select {
	case r := <-done:
		return e.backendOutcome(ctx, be, taskID, r.res, r.err)
	case <-ctx.Done():
		return ctxOutcome(ctx)
	}
}

// ctxBound is implemented by backends whose Do returns promptly once ctx
// is cancelled or expires (net/http clients abort the exchange), so the
// engine need not guard the deadline with a goroutine of its own.
type ctxBound interface{ ReturnsOnCancel() bool }

// runInline is run for a ctxBound backend: same outcomes, same slot
// release after the backend returns, no extra goroutine.
func (e *Engine) runInline(ctx context.Context, be backend.Backend, req backend.Request, taskID string) outcome {
	e.running.Add(1)
	res, err := e.callBackend(ctx, be, req, taskID)
	e.met.active.Dec()
	e.admit.release()
	e.running.Done()
	if ctx.Err() != nil {
		// The deadline passed (or the caller left) before the backend
		// returned: the same outcome the goroutine path's select gives.
		return ctxOutcome(ctx)
	}
	return e.backendOutcome(ctx, be, taskID, res, err)
}

// backendOutcome maps what the backend returned: an error after our
// context ended is the context's outcome (task_timeout or cancelled).
func (e *Engine) backendOutcome(ctx context.Context, be backend.Backend, taskID string, res backend.Result, err error) outcome {
	if ctx.Err() != nil && err != nil {
		return ctxOutcome(ctx)
	}
	if err != nil {
		return e.backendFailure(err, be, taskID)
	}
	return outcome{res: res, ai: generatesAI(be)}
}

var errPanic = errors.New("backend panicked")

// callBackend runs be.Do, turning a panic into errPanic.
func (e *Engine) callBackend(ctx context.Context, be backend.Backend, req backend.Request, taskID string) (res backend.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			// The panic value may hold payload text: log only the stack
			// (which prints arguments as machine words, not contents).
			e.log.Error("backend panicked", "task_id", taskID, "backend", be.Name(), "stack", string(debug.Stack()))
			res, err = backend.Result{}, errPanic
		}
	}()
	return be.Do(ctx, req)
}

func (e *Engine) backendFailure(err error, be backend.Backend, taskID string) outcome {
	switch {
	case errors.Is(err, backend.ErrBadPayload):
		return failure(wire.NewError(wire.CodeValidationError, "payload does not match the intent's input").WithField("payload"))
	case errors.Is(err, backend.ErrUnknownModel):
		return failure(wire.NewError(wire.CodeE029, "model not served by this node").WithField("model"))
	case errors.Is(err, backend.ErrUnknownIntent):
		return failure(wire.NewError(wire.CodeUnknownIntent, "intent not served by this node").WithField("intent"))
	}
	if !errors.Is(err, errPanic) {
		// Backends keep payload and response bodies out of errors (backend.Backend contract).
		e.log.Warn("backend failed", "task_id", taskID, "backend", be.Name(), "error", err)
	}
	return failure(wire.NewError(wire.CodeBackendError, "inference backend failed"))
}

// ctxOutcome maps an ended context: our deadline is task_timeout (TASK-4);
// a caller that went away gets service_unavailable, which it never reads.
func ctxOutcome(ctx context.Context) outcome {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return outcome{err: wire.NewError(wire.CodeTaskTimeout, "task exceeded constraints.timeout_ms"), timeout: true}
	}
	return failure(wire.NewError(wire.CodeUnavailable, "task cancelled by caller"))
}

func resolveError(err error) *wire.Error {
	switch {
	case errors.Is(err, backend.ErrUnknownModel):
		return wire.NewError(wire.CodeE029, "model not served by this node").WithField("model")
	case errors.Is(err, backend.ErrUnknownIntent):
		return wire.NewError(wire.CodeUnknownIntent, "intent not served by this node").WithField("intent")
	}
	return wire.NewError(wire.CodeInternal, "intent routing failed")
}

// aiMarker is implemented by backends that know whether their output is
// model-generated. The echo backend returns false: it reflects the caller's
// input, so marking it generated_by_ai would be false (docs/spec-decisions.md).
type aiMarker interface{ GeneratedByAI() bool }

func generatesAI(be backend.Backend) bool {
	if m, ok := be.(aiMarker); ok {
		return m.GeneratedByAI()
	}
	return be.Name() != "echo"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
