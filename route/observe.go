package route

import (
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Observation is what this caller saw of one attempt answered by another
// node: the proxy-observed latency report of iicp-telemetry.md §2. It
// names the node and what happened, never the task or its answer.
type Observation struct {
	Path   Path
	NodeID string
	// Latency is the attempt's wall time as the caller measured it.
	Latency time.Duration
	// Status is success, failure (backend or internal error) or timeout.
	Status string
	// QoSMet: the latency was within the §11.1 budget of the call's QoS
	// class (true for best-effort and for an unknown class).
	QoSMet bool
	// Tokens is the RESPONSE's metrics.tokens_used (the node's figure).
	Tokens int64
}

// WithObserver hands every attempt another node answered to f (the
// daemon reports them as telemetry). f must not block: the router calls
// it on the call's goroutine.
func WithObserver(f func(Observation)) Option {
	return func(s *settings) error {
		s.observer = f
		return nil
	}
}

// qosBudget is iicp-semantics.md §11.1 (0: no budget).
func qosBudget(qos string) time.Duration {
	switch qos {
	case wire.QoSRealtime:
		return 500 * time.Millisecond
	case wire.QoSInteractive:
		return 2 * time.Second
	case wire.QoSBatch:
		return 10 * time.Second
	}
	return 0
}

// observe reports one attempt on a remote node that answered with an
// outcome: success, a backend/internal failure or a timeout. Refusals
// (unauthorized, validation, capacity_exceeded…) and transport errors say
// nothing about the node's execution and are not reported.
func (r *Router) observe(st *run, t Target, start time.Time, resp *wire.Response) {
	if r.s.observer == nil || t.Path == PathLocal || t.NodeID == "" || resp == nil {
		return
	}
	status := ""
	switch {
	case resp.Error == nil && resp.Status == wire.StatusSuccess:
		status = "success"
	case resp.Error != nil && resp.Error.Code == wire.CodeTaskTimeout:
		status = "timeout"
	case resp.Error != nil && (resp.Error.Code == wire.CodeBackendError || resp.Error.Code == wire.CodeInternal):
		status = "failure"
	default:
		return
	}
	took := r.s.now().Sub(start)
	budget := qosBudget(st.q.QoS)
	r.s.observer(Observation{Path: t.Path, NodeID: t.NodeID, Latency: took, Status: status,
		QoSMet: budget == 0 || took <= budget, Tokens: resp.Metrics.TokensUsed})
}
