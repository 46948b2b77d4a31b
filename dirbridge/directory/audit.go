package directory

import (
	"context"
	"database/sql"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// FindingDeclarationDivergence is the one v1 audit finding (iicp-dir.md
// §3.9): the target's /iicp/health models[] omits a model it registered.
const FindingDeclarationDivergence = "declaration_divergence"

// targetIDPattern is §3.9's target_node_id syntax (at most 36 characters).
var targetIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]*$`)

// auditBody is POST /v1/audit-report. It carries no task data: a target
// and a finding name, nothing else.
type auditBody struct {
	TargetNodeID string `json:"target_node_id"`
	Finding      string `json:"finding"`
}

func validateAudit(b *auditBody) *wire.Error {
	switch {
	case b.TargetNodeID == "" || len(b.TargetNodeID) > 36 || !targetIDPattern.MatchString(b.TargetNodeID):
		return verr("target_node_id", "target_node_id is required: up to 36 letters, digits, '.', '_', ':' or '-'")
	case b.Finding != FindingDeclarationDivergence:
		return verr("finding", "finding must be declaration_divergence")
	}
	return nil
}

// auditResult is the 202 answer: §3.9's {"accepted": true} plus what the
// AUDIT_REPORT event records.
type auditResult struct {
	Accepted                  bool    `json:"accepted"`
	IntegrityEvidenceAccepted bool    `json:"integrity_evidence_accepted"`
	DeltaSuppressed           bool    `json:"delta_suppressed"`
	SuppressedReason          *string `json:"suppressed_reason"`
	OutcomeV2Delta            float64 `json:"outcome_v2_delta"`
}

// handleAuditReport is POST /v1/audit-report (iicp-dir.md §3.9,
// iicp-semantics.md §11.5/§11.8): a registered node (node_token) reports a
// peer. Self-reports are 422 invalid_target; a second report on the same
// target within 24 h is 429 rate_limited; an ineligible reporter (REP-07)
// or one beyond the per-target cap of 2 (SYB-06) is acknowledged 202 but
// suppressed. No report changes outcome-v2 reputation (REP-08).
func (s *Server) handleAuditReport(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	reporter := s.bearerHolder(w, r, now, "audit_report", "too many invalid node tokens from this source address",
		func(tok string) *entry { return s.tokens.verify(s.store.idx, tok) },
		wire.NewError(wire.CodeUnauthorized, "audit reports require the reporter's node token"))
	if reporter == nil {
		return
	}
	var b auditBody
	if e := decodeBody(w, r, maxSmallBody, &b); e != nil {
		httpx.WriteError(w, e)
		return
	}
	if e := validateAudit(&b); e != nil {
		httpx.WriteError(w, e)
		return
	}
	targetID := strings.ToLower(b.TargetNodeID)
	if targetID == reporter.rec.NodeID {
		httpx.WriteError(w, wire.NewError(wire.CodeInvalidTarget, "a node cannot report itself"))
		return
	}
	target := s.store.idx.get(targetID)
	if target == nil {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "target_node_id is not registered"))
		return
	}
	if ok, wait := s.evidence.auditLimit.Allow(reporter.rec.NodeID, now); !ok {
		s.metrics.rateLimited.WithLabelValues("audit_report").Inc()
		httpx.RateLimited(w, "rate_limited: too many audit reports from this reporter", wait)
		return
	}
	res, e := s.recordAudit(r.Context(), reporter, target, b.Finding, now)
	if e != nil {
		httpx.WriteError(w, e)
		return
	}
	reason, result := "", "accepted"
	if res.SuppressedReason != nil {
		reason = *res.SuppressedReason
		result = "suppressed_" + reason // a fixed set: evidence.go and audit.go reasons
	}
	s.metrics.evidence.WithLabelValues("audit_report", result).Inc()
	s.log.Info("audit report", "target", target.rec.NodeID, "reporter", reporter.rec.NodeID, "finding", b.Finding,
		"integrity_evidence_accepted", res.IntegrityEvidenceAccepted, "suppressed_reason", reason)
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusAccepted, res)
}

// recordAudit applies the §11.5 rules under the target's lock and appends
// the AUDIT_REPORT event (accepted or suppressed) to the audit log.
func (s *Server) recordAudit(ctx context.Context, reporter, target *entry, finding string, now time.Time) (auditResult, *wire.Error) {
	ev := s.evidence
	unlock := ev.locks.lock("audit|" + target.rec.NodeID)
	defer unlock()
	since := now.Add(-auditWindow).UnixMilli()
	var dup int
	if err := ev.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_reports WHERE reporter_node_id = ? AND target_node_id = ? AND at >= ?`,
		reporter.rec.NodeID, target.rec.NodeID, since).Scan(&dup); err != nil {
		return auditResult{}, s.auditStoreError(err)
	}
	if dup > 0 {
		e := wire.NewError(wire.CodeRateLimited, "rate_limited: one report per reporter and target per 24 hours")
		e.RetryAfter = int64(auditWindow.Seconds())
		return auditResult{}, e
	}
	indep := independenceKey(reporter.rec, now)
	reason := ""
	if ok, why := s.reporterEligible(reporter, target, now); !ok {
		reason = why
	} else if why, err := ev.auditCap(ctx, target.rec.NodeID, indep, since); err != nil {
		return auditResult{}, s.auditStoreError(err)
	} else {
		reason = why
	}
	accepted := reason == ""
	if _, err := ev.db.ExecContext(ctx, `INSERT INTO audit_reports
		(reporter_node_id, target_node_id, independence, finding, integrity_evidence_accepted, delta_suppressed, reason, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, reporter.rec.NodeID, target.rec.NodeID, indep, finding, accepted, !accepted,
		reason, now.UnixMilli()); err != nil {
		return auditResult{}, s.auditStoreError(err)
	}
	res := auditResult{Accepted: true, IntegrityEvidenceAccepted: accepted, DeltaSuppressed: !accepted}
	if accepted {
		ev.mu.Lock()
		ev.integrity[target.rec.NodeID] = append(ev.integrity[target.rec.NodeID], now)
		ev.mu.Unlock()
		ev.gen.Add(1)
	} else {
		res.SuppressedReason = &reason
	}
	return res, nil
}

// auditCap is the §11.5 per-target cap: at most 2 distinct reporters
// contribute integrity evidence per target per 24 h; reporters of one
// verified operator are one reporter (independenceKey). It returns the
// suppression reason, or "".
func (b *evidenceBook) auditCap(ctx context.Context, targetID, indep string, since int64) (string, error) {
	var keys []string
	err := queryRows(ctx, b.db, `SELECT DISTINCT independence FROM audit_reports
		WHERE target_node_id = ? AND integrity_evidence_accepted = 1 AND at >= ?`, []any{targetID, since},
		func(r *sql.Rows) error {
			var k string
			err := r.Scan(&k)
			keys = append(keys, k)
			return err
		})
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k == indep {
			return "same_operator_already_reported", nil
		}
	}
	if len(keys) >= auditMaxReporters {
		return "target_cap_reached", nil
	}
	return "", nil
}

func (s *Server) auditStoreError(err error) *wire.Error {
	s.log.Error("audit report store", "error", err)
	return wire.NewError(wire.CodeInternal, "could not record the audit report")
}
