package directory

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// proxyTokenBytes is the proxy_token entropy (iicp-telemetry.md §3: a
// 40-byte random token, apart from the node_token).
const proxyTokenBytes = 40

// maxTelemetryLatencyMs bounds latency_ms_observed: one hour.
const maxTelemetryLatencyMs = 3_600_000

// issueProxyToken mints the node's proxy_token at registration and stores
// its hash (replacing any previous one: re-registration rotates it). The
// plaintext is returned once, in the REGISTER ACK.
func (s *Server) issueProxyToken(ctx context.Context, nodeID string) (string, error) {
	raw := make([]byte, proxyTokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("reading random proxy token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(raw) // 54 characters: under bcrypt's 72
	hash, err := bcrypt.GenerateFromPassword([]byte(tok), s.tokens.cost)
	if err != nil {
		return "", fmt.Errorf("hashing proxy token: %w", err)
	}
	ix := "p:" + s.tokens.index(tok)
	b := s.evidence
	if _, err := b.db.ExecContext(ctx, `INSERT INTO proxy_tokens (node_id, token_hash, token_index) VALUES (?, ?, ?)
		ON CONFLICT(node_id) DO UPDATE SET token_hash = excluded.token_hash, token_index = excluded.token_index`,
		nodeID, hash, ix); err != nil {
		return "", fmt.Errorf("storing proxy token: %w", err)
	}
	b.mu.Lock()
	delete(b.proxies, b.proxyOf[nodeID])
	b.proxies[ix], b.proxyOf[nodeID] = proxyCred{nodeID: nodeID, hash: hash, verified: true}, ix
	b.mu.Unlock()
	return tok, nil
}

// verifyProxyToken returns the registered node owning tok, or nil. A
// node_token never matches: proxy tokens live in their own table under a
// distinct index prefix (TEL-AUTH-01).
func (s *Server) verifyProxyToken(tok string) *entry {
	if tok == "" || len(tok) > maxTokenLen {
		return nil
	}
	ix := "p:" + s.tokens.index(tok)
	b := s.evidence
	b.mu.RLock()
	c, ok := b.proxies[ix]
	b.mu.RUnlock()
	if !ok {
		return nil
	}
	if !c.verified {
		if bcrypt.CompareHashAndPassword(c.hash, []byte(tok)) != nil {
			return nil
		}
		b.mu.Lock()
		if cur, ok := b.proxies[ix]; ok && hmac.Equal(cur.hash, c.hash) {
			cur.verified = true
			b.proxies[ix] = cur
		}
		b.mu.Unlock()
	}
	return s.store.idx.get(c.nodeID)
}

// telemetryBody is POST /v1/telemetry (iicp-telemetry.md §2).
type telemetryBody struct {
	NodeID      string   `json:"node_id"`
	ProxyNodeID string   `json:"proxy_node_id"`
	LatencyMs   *float64 `json:"latency_ms_observed"`
	Tokens      int64    `json:"tokens_observed"`
	Status      string   `json:"status"`
	QoSMet      *bool    `json:"qos_met"`
}

// validateTelemetry checks a decoded report; proxy_node_id is checked by
// the handler (its absence is IICP-E032, §T4.1).
func validateTelemetry(b *telemetryBody) *wire.Error {
	switch {
	case b.NodeID == "" || len(b.NodeID) > 64:
		return verr("node_id", "node_id is required (at most 64 characters)")
	case b.LatencyMs == nil || math.IsNaN(*b.LatencyMs) || *b.LatencyMs < 0 || *b.LatencyMs > maxTelemetryLatencyMs:
		return verr("latency_ms_observed", "latency_ms_observed must be a number of milliseconds in [0, 3600000]")
	case b.Tokens < 0:
		return verr("tokens_observed", "tokens_observed must be >= 0")
	case b.Status != "success" && b.Status != "failure" && b.Status != "timeout":
		return verr("status", "status must be success, failure or timeout")
	}
	return nil
}

// telemetryResult is the answer: §2's {"recorded": true} plus the §4
// SCORE_UPDATE fields an auditor needs (quorum_met, distinct_proxies).
type telemetryResult struct {
	Recorded          bool     `json:"recorded"`
	Counted           bool     `json:"counted_toward_quorum"`
	QuorumMet         bool     `json:"quorum_met"`
	DistinctProxies   int      `json:"distinct_proxies"`
	OutlierWeight     float64  `json:"outlier_weight"`
	ObservedLatencyMs *float64 `json:"observed_latency_ms"`
}

// handleTelemetry is POST /v1/telemetry: a proxy's latency observation of
// a node it routed to. Authenticated by proxy_token only (TEL-AUTH-01,
// DIR-TEL-01); the observation moves the node's observed_latency_ms only
// once three independent eligible proxies reported (TEL-QUORUM-01/02,
// REP-06) and is down-weighted as an outlier (TEL-OUTLIER-01..03).
func (s *Server) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	proxy := s.bearerHolder(w, r, now, "telemetry", "too many invalid tokens from this source address", s.verifyProxyToken,
		wire.NewError(wire.CodeE032, "telemetry requires the proxy_token the directory issued at registration"))
	if proxy == nil {
		return
	}
	var b telemetryBody
	if e := decodeBody(w, r, maxSmallBody, &b); e != nil {
		httpx.WriteError(w, e)
		return
	}
	if !strings.EqualFold(b.ProxyNodeID, proxy.rec.NodeID) {
		httpx.WriteError(w, wire.NewError(wire.CodeE032, "proxy_node_id is required and must be the node the proxy_token was issued to"))
		return
	}
	if e := validateTelemetry(&b); e != nil {
		httpx.WriteError(w, e)
		return
	}
	target := s.store.idx.get(strings.ToLower(b.NodeID))
	switch {
	case target == nil:
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "node_id is not registered"))
		return
	case target == proxy || target.rec.NodeID == proxy.rec.NodeID:
		httpx.WriteError(w, wire.NewError(wire.CodeInvalidTarget, "a proxy cannot report telemetry about itself"))
		return
	}
	if ok, wait := s.evidence.telemetryLimit.Allow(proxy.rec.NodeID, now); !ok {
		s.metrics.rateLimited.WithLabelValues("telemetry").Inc()
		httpx.RateLimited(w, "too many telemetry reports from this proxy", wait)
		return
	}
	res, err := s.recordTelemetry(r.Context(), proxy, target, &b, now)
	if err != nil {
		s.log.Error("recording telemetry", "node", target.rec.NodeID, "error", err)
		httpx.WriteError(w, wire.NewError(wire.CodeInternal, "could not record the telemetry report"))
		return
	}
	result := "not_counted"
	if res.Counted {
		result = "counted"
	}
	s.metrics.evidence.WithLabelValues("telemetry", result).Inc()
	s.log.Debug("telemetry recorded", "node", target.rec.NodeID, "proxy", proxy.rec.NodeID,
		"counted", res.Counted, "quorum_met", res.QuorumMet, "distinct_proxies", res.DistinctProxies)
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusCreated, res)
}

// recordTelemetry stores one report and applies the §T4.2 EMA when the
// quorum holds, under the target's lock.
func (s *Server) recordTelemetry(ctx context.Context, proxy, target *entry, b *telemetryBody, now time.Time) (telemetryResult, error) {
	ev := s.evidence
	unlock := ev.locks.lock(target.rec.NodeID)
	defer unlock()
	eligible, _ := s.reporterEligible(proxy, target, now)
	latency := *b.LatencyMs
	weight, err := ev.outlierWeight(ctx, proxy.rec.NodeID, target.rec.NodeID, latency, now)
	if err != nil {
		return telemetryResult{}, err
	}
	qos := b.QoSMet != nil && *b.QoSMet
	if _, err := ev.db.ExecContext(ctx, `INSERT INTO telemetry_reports
		(node_id, proxy_node_id, independence, latency_ms, tokens, status, qos_met, eligible, weight, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, target.rec.NodeID, proxy.rec.NodeID, independenceKey(proxy.rec, now),
		latency, b.Tokens, b.Status, qos, eligible, weight, now.UnixMilli()); err != nil {
		return telemetryResult{}, fmt.Errorf("storing telemetry: %w", err)
	}
	res := telemetryResult{Recorded: true, Counted: eligible, OutlierWeight: weight}
	if err := ev.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT independence) FROM telemetry_reports
		WHERE node_id = ? AND eligible = 1 AND at >= ?`, target.rec.NodeID, now.Add(-telemetryWindow).UnixMilli()).
		Scan(&res.DistinctProxies); err != nil {
		return telemetryResult{}, fmt.Errorf("counting quorum: %w", err)
	}
	res.QuorumMet = res.DistinctProxies >= telemetryQuorum
	ev.mu.Lock()
	if ev.reporters[target.rec.NodeID] != res.DistinctProxies {
		ev.reporters[target.rec.NodeID] = res.DistinctProxies
		ev.gen.Add(1)
	}
	ev.mu.Unlock()
	// Only a completed task's latency is a latency observation; failures
	// and timeouts count toward the quorum and are recorded.
	if res.QuorumMet && eligible && b.Status == "success" {
		if err := s.applyLatency(ctx, proxy.rec.NodeID, target.rec.NodeID, latency, weight, now); err != nil {
			return telemetryResult{}, err
		}
	}
	ev.mu.RLock()
	if v, ok := ev.latency[target.rec.NodeID]; ok {
		v = roundRep(v)
		res.ObservedLatencyMs = &v
	}
	ev.mu.RUnlock()
	return res, nil
}

// outlierWeight is §T4.3: 0.1 when the proxy already made ≥ 10
// observations of this node (in the quorum window) and reports more than
// 3 × the median of the node's eligible reports of the last 24 h; else 1.
func (b *evidenceBook) outlierWeight(ctx context.Context, proxyID, nodeID string, latency float64, now time.Time) (float64, error) {
	var prior int
	if err := b.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM telemetry_reports WHERE node_id = ? AND proxy_node_id = ? AND at >= ?`,
		nodeID, proxyID, now.Add(-telemetryWindow).UnixMilli()).Scan(&prior); err != nil {
		return 0, fmt.Errorf("counting observations: %w", err)
	}
	if prior < outlierMinObservations {
		return 1, nil
	}
	med, ok, err := b.medianLatency(ctx, nodeID, now)
	if err != nil || !ok || latency <= outlierFactor*med {
		return 1, err
	}
	return outlierWeight, nil
}

// medianLatency is the median of the node's eligible reports in the
// §T4.3 window.
func (b *evidenceBook) medianLatency(ctx context.Context, nodeID string, now time.Time) (float64, bool, error) {
	since := now.Add(-telemetryMedianWindow).UnixMilli()
	var n int
	if err := b.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM telemetry_reports WHERE node_id = ? AND eligible = 1 AND status = 'success' AND at >= ?`,
		nodeID, since).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("counting reports: %w", err)
	}
	if n == 0 {
		return 0, false, nil
	}
	pick := func(off int) (float64, error) {
		var v float64
		err := b.db.QueryRowContext(ctx, `SELECT latency_ms FROM telemetry_reports WHERE node_id = ? AND eligible = 1 AND status = 'success' AND at >= ?
			ORDER BY latency_ms LIMIT 1 OFFSET ?`, nodeID, since, off).Scan(&v)
		return v, err
	}
	hi, err := pick(n / 2)
	if err != nil || n%2 == 1 {
		return hi, err == nil, err
	}
	lo, err := pick(n/2 - 1)
	return (lo + hi) / 2, err == nil, err
}

// applyLatency moves observed_latency_ms: the first write after quorum
// takes the value as is, later ones the EMA with α (× the outlier
// weight). One proxy moves one node at most once per telemetrySpacing.
func (s *Server) applyLatency(ctx context.Context, proxyID, nodeID string, latency, weight float64, now time.Time) error {
	ev := s.evidence
	key := proxyID + "|" + nodeID
	ev.mu.RLock()
	prev, had := ev.latency[nodeID]
	last, seen := ev.applied[key]
	ev.mu.RUnlock()
	if seen && now.Sub(last) < telemetrySpacing {
		return nil
	}
	next := latency
	if had {
		a := s.cfg.TelemetryAlpha * weight
		next = a*latency + (1-a)*prev
	}
	if _, err := ev.db.ExecContext(ctx, `INSERT INTO telemetry_latency (node_id, observed_latency_ms, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(node_id) DO UPDATE SET observed_latency_ms = excluded.observed_latency_ms, updated_at = excluded.updated_at`,
		nodeID, next, now.UnixMilli()); err != nil {
		return fmt.Errorf("storing observed latency: %w", err)
	}
	ev.mu.Lock()
	ev.latency[nodeID], ev.applied[key] = next, now
	ev.mu.Unlock()
	ev.gen.Add(1)
	return nil
}
