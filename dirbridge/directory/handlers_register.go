package directory

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// ack is the 201 body of REGISTER (iicp-core.md §2.2, iicp-dir.md §3.1).
type ack struct {
	MessageType string `json:"message_type"`
	NodeID      string `json:"node_id"`
	NodeToken   string `json:"node_token"` // returned once; LOG-FORBIDDEN
	// ProxyToken authenticates POST /v1/telemetry only (iicp-telemetry.md
	// §3); returned once; LOG-FORBIDDEN.
	ProxyToken       string  `json:"proxy_token,omitempty"`
	ExpiresAt        *string `json:"expires_at"`
	Directory        string  `json:"directory"`
	ObservedSourceIP string  `json:"observed_source_ip"`
	NextHeartbeatMs  int64   `json:"next_heartbeat_ms"`
}

// handleRegister is POST /v1/register: validate, refuse non-routable
// endpoints, check ownership on refresh, probe liveness, then issue a token.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	now, key := s.now(), s.limitKey(r)
	var b registerBody
	if !s.admitRegister(w, r, &b, key, now) {
		return
	}
	if b.NodeID == "" {
		b.NodeID = newUUID()
	}
	b.NodeID = strings.ToLower(b.NodeID)
	unlock := s.nodeLocks.lock(b.NodeID)
	defer unlock()
	old := s.store.idx.get(b.NodeID)
	own, e := s.proveOwnership(r.Context(), old, &b, key, now)
	if e != nil {
		s.regFail(w, "ownership", e)
		return
	}
	if err := s.prober.health(r.Context(), b.Endpoint); err != nil {
		s.metrics.probes.WithLabelValues("failed").Inc()
		code := wire.CodeLivenessFailed
		if errors.Is(err, httpx.ErrNonRoutable) {
			code = wire.CodeE035
		}
		s.regFail(w, "liveness", wire.NewError(code, err.Error()))
		return
	}
	s.metrics.probes.WithLabelValues("ok").Inc()
	tok, cred, err := s.tokens.issue()
	if err != nil {
		s.log.Error("issuing token", "error", err)
		s.regFail(w, "error", wire.NewError(wire.CodeInternal, "could not issue a token"))
		return
	}
	ip := observedIP(r)
	rec, st := buildRecord(&b, old, now, ip)
	s.bindOperator(rec, old, b.OperatorDelegation, now)
	oldKey := ""
	if old != nil {
		oldKey = old.rec.PublicKey
	} else if own.prior != nil {
		carryHistory(rec, st, &own.prior.rec, &own.prior.state)
		oldKey = own.prior.rec.PublicKey
	}
	if rec.OperatorPubKey != "" {
		s.operators.regMu.Lock()
		defer s.operators.regMu.Unlock()
		// A rotation may have landed since bindOperator: re-map.
		rec.OperatorPubKey, rec.OperatorNotAfter = s.operators.keys.current(rec.OperatorPubKey, rec.OperatorNotAfter, now)
		if e := s.capOperator(rec, old, now); e != nil {
			s.regFail(w, "operator_cap", e)
			return
		}
	}
	ev := ChangeEvent{Kind: ChangeRegister, NodeID: b.NodeID, Record: rec, Credential: &cred, ObservedIP: ip, At: now}
	if err := s.store.apply(r.Context(), ev, st); err != nil {
		s.log.Error("storing registration", "node", rec.NodeID, "error", err)
		s.regFail(w, "error", wire.NewError(wire.CodeInternal, "could not store the registration"))
		return
	}
	s.afterRegister(r.Context(), own, &b, oldKey, now)
	proxyTok, err := s.issueProxyToken(r.Context(), rec.NodeID)
	if err != nil { // the registration stands; a re-registration issues another
		s.log.Error("issuing proxy token", "node", rec.NodeID, "error", err)
	}
	result := "new"
	if old != nil || own.prior != nil {
		result = "refresh"
	}
	s.metrics.registrations.WithLabelValues(result).Inc()
	s.log.Info("node registered", "node", rec.NodeID, "result", result, "intents", len(rec.Capabilities))
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, ack{
		MessageType: "ACK", NodeID: rec.NodeID, NodeToken: tok, ProxyToken: proxyTok, Directory: s.baseURL(r),
		ObservedSourceIP: ip, NextHeartbeatMs: s.cfg.HeartbeatInterval.Milliseconds(),
	})
}

// admitRegister decodes and validates a REGISTER and charges the source's
// rate limit. A source over its budget is refused before any work; only a
// well-formed registration is charged, so junk cannot use up the budget
// of a network it shares a key with. It reports whether to go on.
func (s *Server) admitRegister(w http.ResponseWriter, r *http.Request, b *registerBody, key string, now time.Time) bool {
	if blocked, wait := s.regLimit.Blocked(key, now); blocked {
		s.regRateLimited(w, wait)
		return false
	}
	if e := decodeBody(w, r, maxRegisterBody, b); e != nil {
		s.regFail(w, "invalid", e)
		return false
	}
	if e := s.checkRegister(b); e != nil {
		s.regFail(w, "invalid", e)
		return false
	}
	if ok, wait := s.regLimit.Allow(key, now); !ok {
		s.regRateLimited(w, wait)
		return false
	}
	if b.CurrentNodeToken != "" {
		if blocked, wait := s.badTokenLimit.Blocked(key, now); blocked {
			s.regRateLimited(w, wait)
			return false
		}
	}
	return true
}

func (s *Server) regRateLimited(w http.ResponseWriter, wait time.Duration) {
	s.log.Warn("registration rejected", "reason", "rate_limited", "code", "IICP-E034")
	s.metrics.rateLimited.WithLabelValues("register").Inc()
	s.metrics.registrations.WithLabelValues("rate_limited").Inc()
	httpx.RateLimited(w, "IICP-E034: too many registrations from this source address", wait)
}

// bindOperator records the operator a delegation proves on rec. A refresh
// without a (valid) delegation keeps the operator on record: the owner
// proved itself with its token. A delegation that does not verify binds
// nothing (§3.1) and is logged with its reason, never its contents.
func (s *Server) bindOperator(rec *NodeRecord, old *entry, d *wire.OperatorDelegation, now time.Time) {
	key, err := verifiedOperator(d, rec.NodeID, now)
	notAfter := int64(0)
	if key != "" {
		// A rotated key's delegation binds the successor during the
		// overlap, nothing after it (operator_rotate.go). Only a node
		// already linked to the successor may use one: a rotated key
		// creates no new claims (§3.16).
		mapped, na := s.operators.keys.current(key, d.NotAfter, now)
		if mapped != key && (old == nil || old.rec.OperatorPubKey != mapped) {
			mapped = ""
		}
		if key, notAfter = mapped, na; key == "" {
			err = errRotatedOperator
		}
	}
	if err != nil {
		s.metrics.registrations.WithLabelValues("operator_unverified").Inc()
		s.log.Info("operator_delegation not accepted; node stays operator-unverified", "node", rec.NodeID, "reason", err.Error())
	}
	rec.OperatorPubKey, rec.OperatorNotAfter = key, notAfter
	if key == "" && old != nil && old.rec.OperatorPubKey != "" {
		rec.OperatorPubKey, rec.OperatorNotAfter = old.rec.OperatorPubKey, old.rec.OperatorNotAfter
	}
}

// capOperator applies max_nodes_per_operator to the binding rec is about
// to get. A node already bound (unexpired) to the key keeps it. Beyond the
// cap a new node is refused (403); an existing node is refreshed with its
// previous binding, so a renewal beyond the cap cannot drop a registered
// node out of the directory.
func (s *Server) capOperator(rec *NodeRecord, old *entry, now time.Time) *wire.Error {
	key := rec.operatorAt(now)
	if key == "" || s.operators.admit(s.store.idx, key, rec.NodeID, now) == nil {
		return nil
	}
	if old == nil {
		return wire.NewError(wire.CodeForbidden, fmt.Sprintf(
			"this operator key already has %d registered nodes (the directory's max_nodes_per_operator)", s.operators.maxNodes)).
			WithField("operator_delegation")
	}
	rec.OperatorPubKey, rec.OperatorNotAfter = old.rec.OperatorPubKey, old.rec.OperatorNotAfter
	s.log.Info("operator delegation not applied: the operator is at max_nodes_per_operator", "node", rec.NodeID)
	return nil
}

// regFail counts and logs a refused REGISTER by reason and IICP code: the
// request's tokens and body never reach the log (SEC-LOG-01).
func (s *Server) regFail(w http.ResponseWriter, result string, e *wire.Error) {
	s.metrics.registrations.WithLabelValues(result).Inc()
	s.log.Warn("registration rejected", "reason", result, "code", string(e.Code))
	httpx.WriteError(w, e)
}

// checkRegister applies validation, the intent risk policy and the
// name-level routability check (IICP-E035).
func (s *Server) checkRegister(b *registerBody) *wire.Error {
	if e := validateRegister(b, s.cfg.Dev); e != nil {
		return e
	}
	for i, c := range b.Capabilities {
		if refused, why := refusedIntent(c.Intent, s.cfg.AllowHighRisk); refused {
			return verr(fmt.Sprintf("capabilities[%d].intent", i), why)
		}
	}
	if s.cfg.Dev {
		return nil
	}
	if err := httpx.CheckHost(endpointHost(b.Endpoint)); err != nil {
		return wire.NewError(wire.CodeE035, err.Error()).WithField("endpoint")
	}
	if b.TransportEndpoint != "" {
		if err := httpx.CheckHost(endpointHost(b.TransportEndpoint)); err != nil {
			return wire.NewError(wire.CodeE035, err.Error()).WithField("transport_endpoint")
		}
	}
	return nil
}

// checkOwnership enforces iicp-dir.md §5 (IICP-E049/E050) on a
// re-registration of an existing node_id. A registration that does not
// prove ownership never obtains the node's credential:
//   - a supplied current_node_token must match (else 403, and the source
//     is charged a bad token);
//   - without a valid token, a changed cx_public_key is IICP-E049;
//   - a secured node (operator_pubkey or cx_public_key on record) needs
//     the token on every refresh (E′ hardening) → IICP-E050;
//   - an unchanged route needs the token too → IICP-E050: a token-less
//     refresh would otherwise mint a fresh credential and lock the owner
//     out (docs/spec-decisions.md "token-less refresh");
//   - a changed endpoint/transport_endpoint of an unsecured node is
//     accepted only when the old endpoint is verified absent (its health
//     probe fails), the spec's rotation path → else IICP-E050.
func (s *Server) checkOwnership(ctx context.Context, old *entry, b *registerBody, key string) *wire.Error {
	if old == nil {
		return nil
	}
	cxChanged := !sameJSON(old.rec.CXPublicKey, b.CXPublicKey)
	if b.CurrentNodeToken != "" {
		if e := s.tokens.verify(s.store.idx, b.CurrentNodeToken); e != nil && e.rec.NodeID == old.rec.NodeID {
			return nil
		}
		s.badToken(key, "register", old.rec.NodeID)
		if cxChanged {
			return wire.NewError(wire.CodeE049, "current_node_token does not prove ownership of this node")
		}
		return wire.NewError(wire.CodeE050, "current_node_token does not prove ownership of this node")
	}
	switch {
	case cxChanged:
		return wire.NewError(wire.CodeE049, "changing cx_public_key requires current_node_token")
	case old.rec.OperatorPubKey != "":
		return wire.NewError(wire.CodeE050, "this node is secured by an operator key: refresh requires current_node_token")
	case !isNullJSON(old.rec.CXPublicKey):
		return wire.NewError(wire.CodeE050, "this node is secured by a cx_public_key: refresh requires current_node_token")
	case old.rec.Endpoint == b.Endpoint && old.rec.TransportEndpoint == b.TransportEndpoint:
		return wire.NewError(wire.CodeE050, "this node_id is registered: refresh requires current_node_token")
	}
	if s.prober.health(ctx, old.rec.Endpoint) == nil {
		return wire.NewError(wire.CodeE050, "changing a routing endpoint requires current_node_token while the old endpoint still answers")
	}
	return nil
}

// buildRecord turns a validated REGISTER into the stored record and the
// node's fresh heartbeat state (a refresh keeps history counters).
func buildRecord(b *registerBody, old *entry, now time.Time, ip string) (*NodeRecord, *nodeState) {
	rec := &NodeRecord{
		NodeID: b.NodeID, Endpoint: b.Endpoint, TransportEndpoint: b.TransportEndpoint, Region: b.Region,
		Capabilities: b.Capabilities, Limits: b.Limits, Availability: b.Availability, PublicKey: b.PublicKey,
		Extensions: b.Extensions, SDKLanguage: b.SDKLanguage, SDKVersion: b.SDKVersion,
		ImplementationName: b.ImplementationName, ImplementationVersion: b.ImplementationVersion,
		SDKCompatVersion: b.SDKCompatibilityVersion, Backend: b.Backend, TransportMethod: b.TransportMethod,
		RegisteredAt: now, UpdatedAt: now,
	}
	if !isNullJSON(b.CXPublicKey) {
		var buf bytes.Buffer
		if json.Compact(&buf, b.CXPublicKey) == nil {
			rec.CXPublicKey = buf.Bytes()
		}
	}
	rec.AllowRemoteInference = b.CIPPolicy != nil && b.CIPPolicy.AllowRemoteInference
	rec.CIPLevel = b.CIPConformanceLevel
	if rec.CIPLevel == "" {
		rec.CIPLevel = "CIP-None"
		if rec.AllowRemoteInference {
			rec.CIPLevel = "CIP-Provider"
		}
	}
	st := &nodeState{LastSeen: now, Available: true, ObservedIP: ip, Reputation: defaultReputation}
	if old != nil {
		rec.RegisteredAt = old.rec.RegisteredAt
		prev := old.state.Load()
		st.CompletedTasks, st.FailedTasks, st.Reputation = prev.CompletedTasks, prev.FailedTasks, prev.Reputation
		st.LastBatchID = prev.LastBatchID
	}
	return rec, st
}

// handleDeregister is DELETE /v1/register and POST /v1/deregister.
func (s *Server) handleDeregister(w http.ResponseWriter, r *http.Request) {
	key, tok := s.limitKey(r), bearer(r)
	if blocked, wait := s.badTokenLimit.Blocked(key, s.now()); blocked && tok != "" {
		s.metrics.rateLimited.WithLabelValues("deregister").Inc()
		httpx.RateLimited(w, "too many invalid node tokens from this source address", wait)
		return
	}
	e := s.tokens.verify(s.store.idx, tok)
	if e == nil {
		if tok != "" {
			s.badToken(key, "deregister", "")
		}
		httpx.WriteError(w, wire.NewError(wire.CodeUnauthorized, "missing or invalid node token"))
		return
	}
	var body struct {
		NodeID string `json:"node_id"`
	}
	if r.Method == http.MethodPost {
		// The body is optional: an empty one deregisters the token's node.
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSmallBody))
		if err != nil {
			httpx.WriteError(w, bodyError(err))
			return
		}
		if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &body) != nil {
			httpx.WriteError(w, wire.NewError(wire.CodeValidationError, "request body is not valid JSON"))
			return
		}
	}
	if body.NodeID != "" && !strings.EqualFold(body.NodeID, e.rec.NodeID) {
		httpx.WriteError(w, wire.NewError(wire.CodeForbidden, "token does not belong to this node_id"))
		return
	}
	unlock := s.nodeLocks.lock(e.rec.NodeID)
	defer unlock()
	ev := ChangeEvent{Kind: ChangeDeregister, NodeID: e.rec.NodeID, Reason: ReasonExplicit, At: s.now()}
	if err := s.store.apply(r.Context(), ev, nil); err != nil {
		s.log.Error("deregistering", "node", e.rec.NodeID, "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not deregister"))
		return
	}
	s.revokeMembership(e.rec, ev.At)
	s.log.Info("node deregistered", "node", e.rec.NodeID)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deregistered": true, "node_id": e.rec.NodeID})
}

func sameJSON(a, b json.RawMessage) bool {
	if isNullJSON(a) || isNullJSON(b) {
		return isNullJSON(a) == isNullJSON(b)
	}
	var ba, bb bytes.Buffer
	if json.Compact(&ba, a) != nil || json.Compact(&bb, b) != nil {
		return false
	}
	return bytes.Equal(ba.Bytes(), bb.Bytes())
}

func isNullJSON(r json.RawMessage) bool {
	t := bytes.TrimSpace(r)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// newUUID returns a random (v4) UUID: anonymised, not tied to hardware
// (SEC-PRIV-08).
func newUUID() string {
	var b [16]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return wire.UUIDv4(b)
}
