package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshnode/meshnode/internal/retry"
	"github.com/meshnode/meshnode/wire"
)

// CallOptions tune one direct peer call.
type CallOptions struct {
	// Peer pins the call to one peer; no other peer is tried.
	Peer peer.ID
	// Credential returns the consumer token for one attempt on one peer
	// (nodeID is the peer's advertised node_id, "" when the table does not
	// know it), so every attempt carries a token minted for its own target.
	// The token travels in the HEADERS frame and reaches the serving engine
	// as wire.Caller.ConsumerToken. LOG-FORBIDDEN. nil or "" sends none; an
	// error skips the peer for this call (no credential it would accept)
	// without counting an attempt.
	Credential func(ctx context.Context, p peer.ID, nodeID string) (string, error)
	// JSON selects /iicp/task-json/1.0.0 instead of native CBOR.
	JSON bool
	// MaxAttempts overrides Config.RetryAttempts when positive.
	MaxAttempts int
	// OnEvent streams the answer (taskstream.go): the CALL should list
	// wire.ProfileServiceLifecycle in constraints.required_profiles, and
	// OnEvent gets the accepted and partial events as they arrive. A
	// streamed call makes one attempt: once output has reached the caller,
	// another peer cannot take over. An OnEvent error or the end of ctx
	// cancels the task on the peer (a CONTROL cancel, taskstream.go).
	OnEvent EventFunc
	// ResumeAfter (with OnEvent and Peer) resumes a streamed task whose
	// stream broke: the call (same task_id and request) gets the events
	// after this sequence, then the terminal RESPONSE.
	ResumeAfter *uint64
}

// FixedCredential is a CallOptions.Credential that gives every peer the
// same token: for a call pinned to one peer, whose token was minted for it.
func FixedCredential(token string) func(context.Context, peer.ID, string) (string, error) {
	return func(context.Context, peer.ID, string) (string, error) { return token, nil }
}

// CallInfo reports how a call went.
type CallInfo struct {
	// Peer served the returned response ("" when none did).
	Peer peer.ID
	// Attempts is the number of attempts made; Tried lists their peers in order.
	Attempts int
	Tried    []peer.ID
}

var (
	// ErrNoCandidate: the mesh knows no eligible peer for the intent (none
	// serves it, or every circuit is open). Fall back to directory discover
	// and HTTP.
	ErrNoCandidate = errors.New("mesh: no peer available for the intent")
	// ErrUnreachable: candidates existed but none returned a response
	// within the retry budget.
	ErrUnreachable = errors.New("mesh: no peer answered")
	// ErrClosed: the mesh has been closed.
	ErrClosed = errors.New("mesh: closed")
	// errProtocol: a peer answered with something that is not a RESPONSE.
	errProtocol = errors.New("mesh: peer violated the task protocol")
	// ErrForgedResponse: a peer answered with a RESPONSE naming another
	// node_id than the one its key proves. The answer is dropped and the
	// peer's circuit charged; it is never returned as that node's answer.
	ErrForgedResponse = errors.New("mesh: peer answered under another node's node_id")
	// errSlotWait: the call's time ran out while callStreamsPerPeer
	// streams to the peer were already in flight from this node.
	errSlotWait = errors.New("mesh: waiting for a task stream slot")
)

// outcome classifies one attempt (iicp-semantics.md §2.2, §6.1, §7.1).
type outcome int

const (
	outFinal      outcome = iota // return this response
	outRetry                     // transient: back off, then try another peer
	outSwitch                    // capacity_exceeded: next peer, no backoff
	outLocalError                // our own error: stop
)

// Call runs call on a mesh peer that serves its intent. Peers come from the
// peer table and the DHT, ranked by selection value (select.go); a failed
// attempt is retried on another peer per iicp-semantics.md §6.1 (3
// attempts, 200 ms base, ×2, ±20 % jitter), capacity_exceeded switches peer
// at once (§2.2), and per-peer circuit breakers skip failing peers (§7.1).
// Each attempt gets a fresh call_id; task_id is kept.
//
// A non-nil response is the peer's answer, successful or not (its Error
// carries the IICP code) and err is nil. err is set only when no peer
// answered: ErrNoCandidate, ErrUnreachable, ErrClosed, a *wire.Error for an
// invalid call, or the context's error.
func (m *Mesh) Call(ctx context.Context, call *wire.Call, opts CallOptions) (*wire.Response, CallInfo, error) {
	var info CallInfo
	if m.ctx.Err() != nil {
		return nil, info, ErrClosed
	}
	if !m.started.Load() {
		return nil, info, ErrNotStarted
	}
	if werr := wire.ValidateCall(call); werr != nil {
		return nil, info, werr
	}
	codec := taskCodecs[0]
	if opts.JSON {
		codec = jsonCodec
	}
	attempts := m.cfg.RetryAttempts
	if opts.MaxAttempts > 0 {
		attempts = opts.MaxAttempts
	}
	if opts.OnEvent != nil {
		attempts = 1
	}
	cands, err := m.candidates(ctx, call, opts, attempts)
	if err != nil {
		return nil, info, err
	}
	last := outFinal
	var lastErr error
	var lastResp *wire.Response
	var retryable map[peer.ID]bool // made on the first failed attempt
	var skipped []peer.ID
	for info.Attempts < attempts {
		if info.Attempts > 0 && last != outSwitch {
			if err := retry.Sleep(ctx, retry.Backoff(m.cfg.RetryBase, info.Attempts)); err != nil {
				return lastResp, info, err
			}
		}
		p, ok := m.nextPeer(cands, append(skipped, info.Tried...), retryable)
		if !ok {
			break
		}
		token, err := m.credential(ctx, opts, p)
		if err != nil {
			skipped = append(skipped, p)
			last = outSwitch // nothing was sent: no pause before the next peer
			m.log.Debug("no credential for peer", "peer", logPeer(p), "error", err)
			continue
		}
		info.Attempts++
		info.Tried = append(info.Tried, p)
		attempt := *call
		attempt.CallID = newUUID()
		resp, err := m.callPeer(ctx, p, &attempt, token, codec, opts)
		last = m.judge(p, resp, err)
		m.stats.count("call_attempt")
		switch last {
		case outFinal:
			info.Peer = p
			return resp, info, nil
		case outLocalError:
			return nil, info, err
		}
		if retryable == nil {
			retryable = map[peer.ID]bool{}
		}
		retryable[p] = last == outRetry
		if resp != nil {
			lastResp, info.Peer = resp, p
		}
		lastErr = err
		m.log.Debug("call attempt failed", "peer", logPeer(p), "attempt", info.Attempts, "error", err)
	}
	switch {
	case lastResp != nil:
		return lastResp, info, nil
	case info.Attempts == 0:
		return nil, info, fmt.Errorf("%w: every circuit is open", ErrNoCandidate)
	}
	return nil, info, fmt.Errorf("%w after %d attempts: %w", ErrUnreachable, info.Attempts, lastErr)
}

// credential asks opts.Credential for p's token.
func (m *Mesh) credential(ctx context.Context, opts CallOptions, p peer.ID) (string, error) {
	if opts.Credential == nil {
		return "", nil
	}
	var nodeID string
	if pi, ok := m.table.get(p); ok {
		nodeID = pi.NodeID
	}
	return opts.Credential(ctx, p, nodeID)
}

// candidates returns the ranked eligible peers for call.
func (m *Mesh) candidates(ctx context.Context, call *wire.Call, opts CallOptions, want int) ([]PeerInfo, error) {
	if opts.Peer != "" {
		// Pinned: nothing to rank, so the table is not consulted. The
		// caller knows the peer (its addresses are in the peerstore, or
		// the DHT will find them).
		return []PeerInfo{{PeerID: opts.Peer}}, nil
	}
	req := selectRequest{intent: call.Intent, model: call.Model, region: call.Constraints.Region}
	list := m.eligiblePeers(req)
	switch {
	case len(list) == 0:
		// Nothing in the table: the DHT is the only way to find a peer now.
		m.findProviders(ctx, call.Intent)
		list = m.eligiblePeers(req)
	case len(list) < want:
		// Enough to start; widen the choice for later calls in the background.
		m.findProvidersAsync(call.Intent)
	}
	if len(list) == 0 {
		return nil, ErrNoCandidate
	}
	return rank(list, req, m.stat, m.cfg.BreakerThreshold), nil
}

func (m *Mesh) eligiblePeers(req selectRequest) []PeerInfo {
	now := m.now()
	var out []PeerInfo
	for _, p := range m.table.serving(req.intent, req.model) {
		if eligible(&p, req) && m.breakers.State(p.PeerID, now) != BreakerOpen {
			out = append(out, p)
		}
	}
	return out
}

// nextPeer picks the best untried peer whose circuit admits a call; when
// all have been tried, a peer that failed transiently may be tried again.
func (m *Mesh) nextPeer(cands []PeerInfo, tried []peer.ID, retryable map[peer.ID]bool) (peer.ID, bool) {
	now := m.now()
	for _, c := range cands {
		// tried holds at most the call's attempts and skipped peers: a scan.
		if !slices.Contains(tried, c.PeerID) && m.breakers.Allow(c.PeerID, now) {
			return c.PeerID, true
		}
	}
	for _, c := range cands {
		if retryable[c.PeerID] && m.breakers.Allow(c.PeerID, now) {
			return c.PeerID, true
		}
	}
	return "", false
}

// judge classifies an attempt and feeds the peer's circuit breaker.
func (m *Mesh) judge(p peer.ID, resp *wire.Response, err error) outcome {
	now := m.now()
	if errors.Is(err, ErrForgedResponse) {
		// Lying about who answered is not a transient fault: never again
		// within this call, and the circuit is charged.
		m.breakers.Failure(p, now)
		m.rates.record(p, false)
		return outSwitch
	}
	if err != nil {
		var werr *wire.Error
		if errors.As(err, &werr) || errors.Is(err, context.Canceled) || errors.Is(err, errSlotWait) || errors.Is(err, errEventAbort) {
			m.breakers.Release(p)
			return outLocalError
		}
		if isResourceLimit(err) {
			// A resource manager refused the stream before any engine
			// saw the CALL: the peer (or this host) is full, as with
			// capacity_exceeded, not failing.
			m.breakers.Release(p)
			m.stats.count("call_stream_refused")
			return outSwitch
		}
		m.breakers.Failure(p, now)
		m.rates.record(p, false)
		return outRetry
	}
	if resp.Status == wire.StatusSuccess {
		m.breakers.Success(p)
		m.rates.record(p, true)
		return outFinal
	}
	// wire.RetryElsewhere decides final or retry; the rest is pacing and
	// breaker bookkeeping.
	if !wire.RetryElsewhere(resp) {
		if resp.Error != nil && resp.Error.Status() >= 500 {
			m.breakers.Failure(p, now) // final, but the peer is failing
			m.rates.record(p, false)
		} else {
			m.breakers.Success(p) // the caller's problem; the peer is healthy
		}
		return outFinal
	}
	var code wire.Code
	if resp.Error != nil {
		code = resp.Error.Code
	}
	switch code {
	case wire.CodeCapacityExceeded:
		m.breakers.Release(p)
		return outSwitch
	case wire.CodeRateLimited, wire.CodeE029:
		m.breakers.Release(p)
		return outRetry
	}
	m.breakers.Failure(p, now)
	m.rates.record(p, false)
	return outRetry
}

// isResourceLimit reports whether err is a resource manager refusing a
// task stream: the remote resets it with StreamResourceLimitExceeded
// (0x1002), or this host's own limits refuse to open it.
func isResourceLimit(err error) bool {
	var se *network.StreamError
	if errors.As(err, &se) && se.ErrorCode == network.StreamResourceLimitExceeded {
		return true
	}
	return errors.Is(err, network.ErrResourceLimitExceeded)
}

// callPeer runs one attempt on one stream to p. A buffered native call
// reuses an idle persistent stream to p when there is one (streampool.go);
// a CALL such a stream's server never read goes out again on a fresh one.
func (m *Mesh) callPeer(ctx context.Context, p peer.ID, call *wire.Call, token string, c *taskCodec, opts CallOptions) (*wire.Response, error) {
	payload, err := c.encodeCall(call)
	if err != nil {
		return nil, wire.NewError(wire.CodeValidationError, "call could not be encoded")
	}
	if len(payload) > m.cfg.MaxCallBytes {
		return nil, wire.NewError(wire.CodePayloadTooLarge, "call exceeds the mesh call size limit")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(call.Constraints.TimeoutMs)*time.Millisecond+callGrace)
	defer cancel()
	if err := m.calls.acquire(ctx, p); err != nil {
		return nil, fmt.Errorf("%w: %w", errSlotWait, err)
	}
	defer m.calls.release(p)
	reusable := c == nativeCodec && opts.OnEvent == nil && opts.ResumeAfter == nil &&
		!call.Negotiates(wire.ProfileServiceLifecycle)
	if reusable {
		if s := m.pool.get(p, m.now()); s != nil {
			m.stats.count("call_stream_reused")
			resp, err := m.callOn(ctx, s, true, payload, call, token, c, opts)
			if !errors.Is(err, errStaleStream) {
				return resp, err
			}
			m.stats.count("call_stream_stale")
		}
	}
	protos := []protocol.ID{c.proto}
	if reusable {
		// The peer's identify tells which it serves: no negotiation round trip.
		protos = []protocol.ID{TaskProtocolPersist, TaskProtocol}
	}
	s, err := m.h.NewStream(network.WithDialPeerTimeout(ctx, m.cfg.DialTimeout), p, protos...)
	if err != nil {
		return nil, fmt.Errorf("opening task stream: %w", err)
	}
	return m.callOn(ctx, s, false, payload, call, token, c, opts)
}

// callOn runs one exchange on s (reused: taken from the pool) and returns
// s to the pool, closes it, or resets it.
func (m *Mesh) callOn(ctx context.Context, s network.Stream, reused bool, payload []byte, call *wire.Call, token string, c *taskCodec, opts CallOptions) (*wire.Response, error) {
	cs := &callStream{s: s, taskID: call.TaskID, streamed: opts.OnEvent != nil && c.streams, reused: reused}
	stop := context.AfterFunc(ctx, cs.abort)
	// The context's end aborts the exchange (cs.abort resets the stream,
	// which ends a blocked Read), so reads need no deadline (one costs a
	// timer per blocking Read). A write does: cs.write holds the lock that
	// abort takes, so a write blocked on flow control must end by itself.
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetWriteDeadline(dl)
	}
	resp, closed, err := m.exchange(cs, payload, token, c, opts)
	if err != nil {
		stop()
		if errors.Is(err, errEventAbort) {
			cs.abort()
		} else {
			// A broken stream is not a cancel: the peer keeps a streamed
			// task for its resume grace.
			cs.reset()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("task stream: %w", ctx.Err())
		}
		return nil, err
	}
	remote := s.Conn().RemotePeer()
	// Back to the pool only if the context's abort can no longer touch it.
	if stop() && !closed && !cs.streamed && s.Protocol() == TaskProtocolPersist {
		_ = s.SetWriteDeadline(time.Time{})
		m.pool.put(remote, s, m.now())
	} else {
		_ = s.Close()
	}
	if c.gateway {
		return resp, nil // a gateway answers for other nodes (gateway.go)
	}
	if err := m.checkAnswerer(remote, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// checkAnswerer binds a RESPONSE to the peer that sent it: its node_id must
// be the one the stream's authenticated key derives to (NodeIDOf). A
// RESPONSE without node_id (a peer's CLOSE, or a terse error) is labelled
// with the proven one.
func (m *Mesh) checkAnswerer(p peer.ID, resp *wire.Response) error {
	want, err := m.nodeIDs.of(p)
	if err != nil {
		m.stats.count("response_node_id_mismatch")
		return fmt.Errorf("%w: %w", ErrForgedResponse, err)
	}
	switch resp.NodeID {
	case want:
	case "":
		resp.NodeID = want
	default:
		m.stats.count("response_node_id_mismatch")
		return ErrForgedResponse
	}
	return nil
}

// exchange writes the request frames and reads the answer.
// closed reports an answer that ends the stream (a CLOSE, or a streamed
// answer). On a reused stream, errStaleStream wraps a write that failed or
// a FIN before any answer byte: the server never read the CALL.
func (m *Mesh) exchange(cs *callStream, payload []byte, token string, c *taskCodec, opts CallOptions) (*wire.Response, bool, error) {
	s, taskID := cs.s, cs.taskID
	req, err := m.requestFrames(payload, token, opts)
	if err != nil {
		return nil, false, err
	}
	if err := cs.write(req); err != nil {
		if cs.reused {
			return nil, false, fmt.Errorf("%w: writing call: %w", errStaleStream, err)
		}
		return nil, false, fmt.Errorf("writing call: %w", err)
	}
	// The write side stays open until the answer is in: the server watches
	// it, and a Reset (the caller giving up) then cancels the engine.
	fr := wire.NewFrameReader(s)
	fr.SetMaxPayload(m.cfg.MaxResponseBytes)
	if cs.streamed {
		answerer := func(r *wire.Response) error { return m.checkAnswerer(s.Conn().RemotePeer(), r) }
		if c.gateway {
			answerer = func(*wire.Response) error { return nil }
		}
		resp, err := readStreamed(fr, taskID, opts.ResumeAfter, opts.OnEvent, answerer)
		return resp, true, err
	}
	h, b, err := fr.ReadFrame()
	if err != nil {
		if cs.reused && errors.Is(err, io.EOF) {
			return nil, false, fmt.Errorf("%w: %w", errStaleStream, err)
		}
		return nil, false, fmt.Errorf("reading response: %w", err)
	}
	switch h.Type {
	case wire.TypeResponse:
		resp, werr := c.decodeResp(b)
		if werr != nil {
			return nil, false, fmt.Errorf("%w: undecodable response", errProtocol)
		}
		// The native RESPONSE has no task_id key; it answers our CALL.
		resp.TaskID = taskID
		return resp, false, nil
	case wire.TypeClose:
		resp := closeResponse(decodeClose(b))
		resp.TaskID = taskID
		return resp, true, nil
	}
	return nil, false, fmt.Errorf("%w: frame type %s", errProtocol, h.Type)
}

// requestFrames frames the optional HEADERS and the CALL as one buffer: one
// Write for every request frame, so with lazy protocol negotiation the
// multistream header leaves in the same flush, the whole request is one
// STREAM frame and no round trip waits on the protocol ack.
func (m *Mesh) requestFrames(payload []byte, token string, opts CallOptions) ([]byte, error) {
	var req []byte
	own, hb := m.ownHeaders()
	if token != "" || opts.ResumeAfter != nil {
		var err error
		if hb, err = cborEnc.Marshal(headersMsg{ConsumerToken: token, Membership: own, Operator: m.ownOperator(), ResumeAfter: opts.ResumeAfter}); err != nil {
			return nil, fmt.Errorf("encoding headers: %w", err)
		}
	}
	if len(hb) > 0 {
		req = make([]byte, 0, 2*wire.HeaderLen+len(hb)+len(payload))
		req, _ = wire.AppendFrame(req, typeHeaders, 0, hb)
	} else {
		req = make([]byte, 0, wire.HeaderLen+len(payload))
	}
	req, err := wire.AppendFrame(req, wire.TypeCall, 0, payload)
	if err != nil {
		return nil, fmt.Errorf("framing call: %w", err)
	}
	return req, nil
}

// closeResponse turns a peer's CLOSE into an error response. A CLOSE is the
// peer refusing our frames, which retrying elsewhere will not fix.
func closeResponse(cm wire.CloseMsg) *wire.Response {
	code := wire.CodeValidationError
	switch cm.Reason {
	case wire.CloseFrameTooLarge, wire.ClosePayloadTooLarge:
		code = wire.CodePayloadTooLarge
	case wire.CloseAuthFailed:
		code = wire.CodeUnauthorized
	}
	msg := "peer closed the task stream: " + string(cm.Reason)
	if cm.Message != "" {
		msg += ": " + cm.Message
	}
	return errorResponse("", wire.NewError(code, msg))
}

// newUUID returns a random UUID version 4.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return wire.UUIDv4(b)
}
