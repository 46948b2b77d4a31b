package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/route"
)

// telemetryBacklog bounds the observations waiting to be reported; when
// the directories are slow, newer ones are dropped (telemetry is advisory
// evidence, never worth blocking a call or growing without bound).
const telemetryBacklog = 64

// telemetryQueue reports what this node's routers observed of other
// nodes to every directory it is registered with (POST /v1/telemetry with
// the proxy_token, iicp-telemetry.md §2): node_id, latency, outcome, no
// payload. A directory where the node is unknown answers 404; that is
// expected with several directories and not an error.
type telemetryQueue struct {
	sessions []*dirclient.Session
	ch       chan route.Observation
	log      *slog.Logger
}

func newTelemetryQueue(sessions []*dirclient.Session, log *slog.Logger) *telemetryQueue {
	return &telemetryQueue{sessions: sessions, ch: make(chan route.Observation, telemetryBacklog), log: log}
}

// observe is the routers' route.WithObserver hook: it never blocks.
func (q *telemetryQueue) observe(o route.Observation) {
	select {
	case q.ch <- o:
	default:
		q.log.Debug("telemetry backlog full; observation dropped", "node", o.NodeID)
	}
}

// serve sends queued observations until ctx ends.
func (q *telemetryQueue) serve(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-q.ch:
			q.report(ctx, o)
		}
	}
}

func (q *telemetryQueue) report(ctx context.Context, o route.Observation) {
	r := dirclient.TelemetryReport{NodeID: o.NodeID, LatencyMs: float64(o.Latency) / float64(time.Millisecond),
		Tokens: max(o.Tokens, 0), Status: o.Status, QoSMet: o.QoSMet}
	for _, s := range q.sessions {
		res, err := s.ReportTelemetry(ctx, r)
		switch {
		case err == nil:
			q.log.Debug("telemetry reported", "node", o.NodeID, "status", o.Status,
				"quorum_met", res.QuorumMet, "distinct_proxies", res.DistinctProxies)
		case errors.Is(err, dirclient.ErrNoProxyToken), errors.Is(err, dirclient.ErrNotFound), ctx.Err() != nil:
		default:
			q.log.Debug("telemetry not reported", "node", o.NodeID, "error", err)
		}
	}
}

// observerOption is the router option reporting observations, when this
// node has directory sessions.
func (d *daemon) observerOption() []route.Option {
	if d.telemetry == nil {
		return nil
	}
	return []route.Option{route.WithObserver(d.telemetry.observe)}
}
