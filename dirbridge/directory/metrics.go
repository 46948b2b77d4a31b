package directory

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/httpx"
)

// metrics are the directory's Prometheus series (meshnode_directory_*).
// Labels are bounded sets (route patterns, result classes): never node IDs,
// addresses, tokens or intents supplied by callers.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	registrations *prometheus.CounterVec
	heartbeats    *prometheus.CounterVec
	probes        *prometheus.CounterVec
	tickets       *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	badTokens     *prometheus.CounterVec
	flushErrors   prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
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
	m.tickets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_dispatch_tickets_total", Help: "Dispatch ticket requests by outcome.",
	}, []string{"result"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_rate_limited_total", Help: "Requests refused by a rate limit.",
	}, []string{"limit"})
	m.badTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshnode_directory_invalid_node_tokens_total", Help: "Requests presenting a wrong node token, by route.",
	}, []string{"route"})
	m.flushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshnode_directory_flush_errors_total", Help: "Failed heartbeat write-behind batches.",
	})
	nodes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshnode_directory_registered_nodes", Help: "Registered nodes (active and dormant).",
	}, func() float64 { return float64(s.store.idx.count()) })
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshnode_directory_active_nodes", Help: "Nodes heard from within the liveness window.",
	}, func() float64 { return float64(s.activeCount()) })
	m.reg.MustRegister(m.requests, m.latency, m.registrations, m.heartbeats, m.probes,
		m.tickets, m.rateLimited, m.badTokens, m.flushErrors, nodes, active,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.reg.MustRegister(listenerCounters(&s.lnStats)...)
	return m
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
