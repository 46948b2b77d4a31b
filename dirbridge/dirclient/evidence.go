package dirclient

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// TelemetryReport is one proxy observation (POST /v1/telemetry,
// iicp-telemetry.md §2). It names the observed node and what happened,
// never the task. ProxyNodeID is filled in by Session.ReportTelemetry.
type TelemetryReport struct {
	NodeID      string  `json:"node_id"`
	ProxyNodeID string  `json:"proxy_node_id"`
	LatencyMs   float64 `json:"latency_ms_observed"`
	Tokens      int64   `json:"tokens_observed"`
	Status      string  `json:"status"`
	QoSMet      bool    `json:"qos_met"`
}

// TelemetryResult is the directory's answer: recorded, and whether the
// node's quorum holds (iicp-telemetry.md §4 quorum_met, distinct_proxies).
type TelemetryResult struct {
	Recorded          bool     `json:"recorded"`
	Counted           bool     `json:"counted_toward_quorum"`
	QuorumMet         bool     `json:"quorum_met"`
	DistinctProxies   int      `json:"distinct_proxies"`
	ObservedLatencyMs *float64 `json:"observed_latency_ms"`
}

// Telemetry sends r authenticated by the proxy_token (never the node
// token: TEL-AUTH-01). The token is LOG-FORBIDDEN.
func (c *Client) Telemetry(ctx context.Context, proxyToken string, r *TelemetryReport) (*TelemetryResult, error) {
	var out TelemetryResult
	if err := c.do(ctx, "telemetry", http.MethodPost, "/v1/telemetry", proxyToken, r, &out, maxBody,
		http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditResult is the answer to an audit report (iicp-dir.md §3.9).
type AuditResult struct {
	Accepted                  bool   `json:"accepted"`
	IntegrityEvidenceAccepted bool   `json:"integrity_evidence_accepted"`
	DeltaSuppressed           bool   `json:"delta_suppressed"`
	SuppressedReason          string `json:"suppressed_reason"`
}

// AuditReport files finding (e.g. "declaration_divergence") about target,
// authenticated by this node's node token (LOG-FORBIDDEN).
func (c *Client) AuditReport(ctx context.Context, nodeToken, target, finding string) (*AuditResult, error) {
	body := struct {
		Target  string `json:"target_node_id"`
		Finding string `json:"finding"`
	}{target, finding}
	var out AuditResult
	if err := c.do(ctx, "audit report", http.MethodPost, "/v1/audit-report", nodeToken, &body, &out, maxBody,
		http.StatusAccepted, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// ErrNoProxyToken: the session holds no proxy_token (not registered yet,
// or the directory issues none).
var ErrNoProxyToken = errors.New("dirclient: no proxy_token from this directory")

// ReportTelemetry sends r as this node (proxy_node_id) with the session's
// proxy_token, bounded by the session's request timeout.
func (s *Session) ReportTelemetry(ctx context.Context, r TelemetryReport) (*TelemetryResult, error) {
	s.mu.Lock()
	id, tok := s.creds.NodeID, s.creds.ProxyToken
	s.mu.Unlock()
	if tok == "" || id == "" {
		return nil, ErrNoProxyToken
	}
	if r.NodeID == id {
		return nil, errors.New("dirclient: a node does not report telemetry about itself")
	}
	r.ProxyNodeID = id
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.RequestTimeout, time.Second))
	defer cancel()
	return s.cfg.Client.Telemetry(ctx, tok, &r)
}
