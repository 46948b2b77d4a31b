package directory

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/httpx"
)

// metrics are the directory's Prometheus series: the spec's iicp_* names
// where iicp-semantics.md §10 names one (iicp_nodes_active,
// iicp_discovery_latency_ms, iicp_heartbeat_misses_total), meshnode_directory_*
// in base units otherwise.
// Labels are bounded sets (route patterns, result classes): never node IDs,
// addresses, tokens or intents supplied by callers.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	registrations *prometheus.CounterVec
	heartbeats    *prometheus.CounterVec
	probes        *prometheus.CounterVec
	reprobes      *prometheus.CounterVec
	tickets       *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	badTokens     *prometheus.CounterVec
	evidence      *prometheus.CounterVec
	flushErrors   prometheus.Counter
	discoverMs    prometheus.Histogram
	misses        prometheus.Counter
}

func newMetrics(s *Server) (*metrics, error) {
	m := &metrics{reg: s.registry}
	own := m.reg == nil
	if own {
		m.reg = prometheus.NewRegistry()
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_requests_total", Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "meshnode_directory_request_seconds",
		Help:    "HTTP request latency by route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
	}, []string{"route"})
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_registrations_total", Help: "REGISTER outcomes.",
	}, []string{"result"})
	m.heartbeats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_heartbeats_total", Help: "HEARTBEAT outcomes.",
	}, []string{"result"})
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_liveness_probes_total", Help: "Registration liveness probe outcomes.",
	}, []string{"result"})
	m.reprobes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_active_probes_total", Help: "Scheduled endpoint probes (DIR-PROBE-NODE-01) by outcome.",
	}, []string{"result"})
	m.tickets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_dispatch_tickets_total", Help: "Dispatch ticket requests by outcome.",
	}, []string{"result"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_rate_limited_total", Help: "Requests refused by a rate limit.",
	}, []string{"limit"})
	m.badTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_invalid_node_tokens_total", Help: "Requests presenting a wrong node token, by route.",
	}, []string{"route"})
	m.evidence = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_evidence_reports_total",
		Help: "Acknowledged telemetry and audit reports (evidence.go) by kind and result: counted/not_counted, accepted/suppressed reason.",
	}, []string{"kind", "result"})
	m.flushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshnode_directory_flush_errors_total", Help: "Failed heartbeat write-behind batches.",
	})
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshnode_directory_registered_nodes", Help: "Registered nodes (active and dormant).",
	}, func() float64 { return float64(s.store.idx.count()) })
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "iicp_nodes_active", Help: "Nodes heard from within the liveness window.",
	}, func() float64 { return float64(s.activeCount()) })
	m.discoverMs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "iicp_discovery_latency_ms",
		Help:    "GET /v1/discover latency in milliseconds (the spec's unit).",
		Buckets: []float64{0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000},
	})
	m.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "iicp_heartbeat_misses_total", Help: "Nodes that went silent past stale_after (expired from discover).",
	})
	cs := []prometheus.Collector{m.requests, m.latency, m.registrations, m.heartbeats, m.probes,
		m.reprobes, m.tickets, m.rateLimited, m.badTokens, m.evidence, m.flushErrors, nodes, active, m.discoverMs, m.misses}
	cs = append(cs, listenerCounters(&s.lnStats)...)
	if own {
		// A registry of its own is the process's only one: add the runtime.
		cs = append(cs, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// listenerCounters export the HTTP listener's accept-side counters.
func listenerCounters(st *httpx.ListenerStats) []prometheus.Collector {
	c := func(name, help string, v interface{ Load() uint64 }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		c("meshnode_directory_connections_accepted_total", "Connections accepted by the HTTP listener.", &st.Accepted),
		c("meshnode_directory_connections_refused_total", "Connections closed at accept: the source was at its per-IP cap.", &st.Refused),
		c("meshnode_directory_accept_errors_total", "Errors accepting connections.", &st.AcceptErrors),
		c("meshnode_directory_tls_handshake_errors_total", "Failed TLS handshakes.", &st.TLSHandshakeErrors),
	}
}
