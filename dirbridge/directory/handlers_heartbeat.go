package directory

import (
	"math"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// heartbeatBody is PING (iicp-core.md §4.1, iicp-dir.md §3.2). Unknown
// fields (updater evidence, challenge_response) are ignored.
type heartbeatBody struct {
	NodeID         string            `json:"node_id"`
	Load           *float64          `json:"load"`
	ActiveJobs     *int              `json:"active_jobs"`
	Available      *bool             `json:"available"`
	SLAP95Ms       *int64            `json:"sla_p95_ms"`
	Metrics        *heartbeatMetrics `json:"metrics"`
	MetricsBatchID string            `json:"metrics_batch_id"`
}

// heartbeatMetrics are the self-reported task outcomes since the previous
// accepted batch (iicp-dir.md §3.2).
type heartbeatMetrics struct {
	TasksSuccess int64 `json:"tasks_success"`
	TasksFailed  int64 `json:"tasks_failed"`
}

// pong is the heartbeat answer (iicp-core.md §4.2, iicp-dir.md §3.2).
type pong struct {
	OK                   bool    `json:"ok"`
	NextHeartbeatMs      int64   `json:"next_heartbeat_ms"`
	ReputationScore      float64 `json:"reputation_score"`
	ReputationModel      string  `json:"reputation_model"`
	ReputationEpoch      string  `json:"reputation_epoch"`
	MetricsBatchAccepted *string `json:"metrics_batch_accepted"`
}

// maxStateCAS bounds the optimistic update loop; contention on one node's
// state comes only from that node's own concurrent heartbeats.
const maxStateCAS = 16

// handleHeartbeat is POST /v1/heartbeat: 401 without a valid token, 404 for
// an unknown node, otherwise refresh liveness, load and the observed address.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	tok, key := bearer(r), s.limitKey(r)
	if tok == "" {
		s.hbFail(w, "unauthorized", wire.NewError(wire.CodeUnauthorized, "missing bearer node token"))
		return
	}
	if blocked, wait := s.badTokenLimit.Blocked(key, s.now()); blocked {
		s.metrics.rateLimited.WithLabelValues("heartbeat").Inc()
		s.metrics.heartbeats.WithLabelValues("rate_limited").Inc()
		httpx.RateLimited(w, "too many invalid node tokens from this source address", wait)
		return
	}
	var b heartbeatBody
	if e := decodeBody(w, r, maxSmallBody, &b); e != nil {
		s.hbFail(w, "invalid", e)
		return
	}
	if e := validateHeartbeat(&b); e != nil {
		s.hbFail(w, "invalid", e)
		return
	}
	e := s.store.idx.get(b.NodeID)
	if e == nil {
		s.hbFail(w, "unknown", wire.NewError(wire.CodeNotFound, "node_id is not registered"))
		return
	}
	if owner := s.tokens.verify(s.store.idx, tok); owner == nil || owner.rec.NodeID != e.rec.NodeID {
		s.badToken(key, "heartbeat", e.rec.NodeID)
		s.hbFail(w, "unauthorized", wire.NewError(wire.CodeUnauthorized, "invalid node token"))
		return
	}
	now, ip := s.now(), observedIP(r)
	accepted, rep, ok := s.applyHeartbeat(e, &b, now, ip)
	if !ok {
		s.hbFail(w, "conflict", wire.NewError(wire.CodeConflict, "concurrent heartbeats; retry"))
		return
	}
	s.metrics.heartbeats.WithLabelValues("ok").Inc()
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, pong{OK: true, NextHeartbeatMs: s.cfg.HeartbeatInterval.Milliseconds(),
		ReputationScore: rep, ReputationModel: reputationModel, ReputationEpoch: s.repEpoch, MetricsBatchAccepted: accepted})
}

// badToken charges source key for a wrong node token (heartbeat,
// deregister, REGISTER's current_node_token) and logs it at WARN, at most
// a few lines a minute: token guessing is throttled per source and
// visible to the operator. The token itself is never logged.
func (s *Server) badToken(key, route, nodeID string) {
	now := s.now()
	s.metrics.badTokens.WithLabelValues(route).Inc()
	s.badTokenLimit.Allow(key, now)
	if ok, suppressed := s.badTokenLog.Allow(now); ok {
		s.log.Warn("invalid node token", "route", route, "source", key, "node", nodeID, "suppressed_since_last", suppressed)
	}
}

// bearerHolder authenticates the request's bearer token with verify
// under the per-source bad-token lockout: a locked-out source gets 429
// (lockedOut), a token verify refuses is counted as bad (when one was
// sent) and gets refused. nil means the answer is written.
func (s *Server) bearerHolder(w http.ResponseWriter, r *http.Request, now time.Time, route, lockedOut string,
	verify func(tok string) *entry, refused *wire.Error) *entry {
	key := s.limitKey(r)
	if blocked, wait := s.badTokenLimit.Blocked(key, now); blocked {
		s.metrics.rateLimited.WithLabelValues(route).Inc()
		httpx.RateLimited(w, lockedOut, wait)
		return nil
	}
	tok := bearer(r)
	e := verify(tok)
	if e == nil {
		if tok != "" {
			s.badToken(key, route, "")
		}
		httpx.WriteError(w, refused)
	}
	return e
}

func (s *Server) hbFail(w http.ResponseWriter, result string, e *wire.Error) {
	s.metrics.heartbeats.WithLabelValues(result).Inc()
	httpx.WriteError(w, e)
}

func validateHeartbeat(b *heartbeatBody) *wire.Error {
	switch {
	case b.NodeID == "":
		return verr("node_id", "node_id is required")
	case b.Load != nil && (math.IsNaN(*b.Load) || *b.Load < 0 || *b.Load > 1):
		return verr("load", "load must be in [0,1]")
	case b.ActiveJobs != nil && *b.ActiveJobs < 0:
		return verr("active_jobs", "active_jobs must be >= 0")
	case b.SLAP95Ms != nil && *b.SLAP95Ms < 0:
		return verr("sla_p95_ms", "sla_p95_ms must be >= 0")
	case b.Metrics != nil && (b.Metrics.TasksSuccess < 0 || b.Metrics.TasksFailed < 0):
		return verr("metrics", "task counters must be >= 0")
	case len(b.MetricsBatchID) > 64 || !printableASCII(b.MetricsBatchID):
		return verr("metrics_batch_id", "metrics_batch_id must be 1-64 printable ASCII characters")
	}
	return nil
}

// applyHeartbeat publishes the node's new state. A heartbeat fully restores
// a dormant node; available defaults to true (iicp-dir.md §3.2). A metrics
// batch is applied at most once per (node, metrics_batch_id) (REP-09) and
// moves reputation by the §11 rules (reputation.go).
func (s *Server) applyHeartbeat(e *entry, b *heartbeatBody, now time.Time, ip string) (*string, float64, bool) {
	for range maxStateCAS {
		old := e.state.Load()
		next := *old
		next.LastSeen, next.DormantSince, next.ObservedIP = now, nil, ip
		next.Available = b.Available == nil || *b.Available
		if b.Load != nil {
			next.Load, next.LoadReported = *b.Load, true
		}
		if b.ActiveJobs != nil {
			next.ActiveJobs = *b.ActiveJobs
		}
		if b.SLAP95Ms != nil {
			v := *b.SLAP95Ms
			next.SLAP95Ms = &v
		}
		var accepted *string
		if b.Metrics != nil {
			if b.MetricsBatchID == "" || b.MetricsBatchID != old.LastBatchID {
				applyOutcome(&next, outcome{
					success: s.creditedSuccess(e.rec, old, b.Metrics.TasksSuccess, now),
					failed:  b.Metrics.TasksFailed,
				}, now)
				next.LastBatchID = b.MetricsBatchID
			}
			if b.MetricsBatchID != "" {
				id := b.MetricsBatchID
				accepted = &id
			}
		}
		if e.state.CompareAndSwap(old, &next) {
			s.store.idx.refreshRanks(e)
			var addr *addrEvent
			if ip != "" && ip != old.ObservedIP { // DIR-ADDR-03/06
				addr = &addrEvent{nodeID: e.rec.NodeID, ip: ip, kind: "heartbeat", at: now}
			}
			s.store.markDirty(e.rec.NodeID, addr)
			return accepted, next.Reputation, true
		}
	}
	return nil, 0, false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
