package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// route is one path of the route table with its handler per method.
type route struct {
	path    string
	methods map[string]http.HandlerFunc
}

// Route paths (iicp-core.md §3, conformance NODE-HEALTH-*, METRICS-*).
const (
	pathTask    = "/v1/task"
	pathHealth  = "/iicp/health"
	pathMetrics = "/metrics"
	pathHealthz = "/healthz"
	pathReadyz  = "/readyz"
)

// routeTable is the node API, in one place.
func (s *Server) routeTable() []route {
	gatherer := prometheus.Gatherer(prometheus.NewRegistry())
	if s.set.registry != nil {
		gatherer = s.set.registry
	}
	metrics := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return []route{
		{pathTask, map[string]http.HandlerFunc{http.MethodPost: s.handleTask}},
		{pathControl, map[string]http.HandlerFunc{http.MethodPost: s.handleControl}},
		{pathHealth, map[string]http.HandlerFunc{http.MethodGet: s.handleHealth}},
		{pathMetrics, map[string]http.HandlerFunc{http.MethodGet: metrics.ServeHTTP}},
		{pathHealthz, map[string]http.HandlerFunc{http.MethodGet: handleHealthz}},
		{pathReadyz, map[string]http.HandlerFunc{http.MethodGet: s.handleReadyz}},
	}
}

// routes builds the local ServeMux (never http.DefaultServeMux). Unknown
// paths and methods get the error envelope, not net/http's plain text.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		mux.Handle(rt.path, methods(rt.methods))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, wire.NewError(wire.CodeNotFound, "no such endpoint"), false)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// POST /v1/task, nearly every request a node serves, skips the
		// mux's pattern match for the handler it would pick: the path is
		// already clean and unescaped, and no route is host-specific.
		if r.Method == http.MethodPost && r.URL.Path == pathTask && r.URL.RawPath == "" {
			s.handleTask(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// methods dispatches by method; HEAD is served by GET, OPTIONS (outside a
// CORS preflight) lists the allowed methods, anything else is 405.
func methods(m map[string]http.HandlerFunc) http.Handler {
	allowed := make([]string, 0, len(m)+2)
	for meth := range m {
		allowed = append(allowed, meth)
	}
	if _, ok := m[http.MethodGet]; ok {
		allowed = append(allowed, http.MethodHead)
	}
	allowed = append(allowed, http.MethodOptions)
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		meth := r.Method
		if meth == http.MethodHead {
			meth = http.MethodGet
		}
		if h, ok := m[meth]; ok {
			h(w, r)
			return
		}
		w.Header().Set("Allow", allow)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeError(w, wire.NewError(wire.CodeMethodNotAllowed, "method not allowed"), false)
	})
}

// routeLabel is the metric/log label for r: a route path or "unmatched".
func routeLabel(r *http.Request) string {
	switch p := r.URL.Path; p {
	case pathTask, pathControl, pathHealth, pathMetrics, pathHealthz:
		return p
	}
	return "unmatched"
}

// handleHealth serves GET /iicp/health: always 200 with status ok|degraded
// (NODE-HEALTH-01), load and active_jobs (NODE-HEALTH-02), JSON (-03).
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.eng.Health(r.Context()))
}

// handleReadyz serves GET /readyz: 200 while the node can serve tasks, 503
// while it cannot (its backend does not answer), for load balancers and
// orchestrators; /iicp/health stays 200 with "degraded" as the spec asks.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h := s.eng.Health(r.Context()); h.Status != "ok" {
		writeBody(w, http.StatusServiceUnavailable, mediaJSON, []byte(`{"status":"unavailable"}`))
		return
	}
	writeBody(w, http.StatusOK, mediaJSON, []byte(`{"status":"ready"}`))
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusOK, mediaJSON, []byte(`{"status":"ok"}`))
}

// httpMetrics are the bridge's own series. Labels are route paths from the
// table and status codes: bounded, caller text never becomes a label.
type httpMetrics struct {
	requests    *prometheus.CounterVec   // meshnode_http_requests_total{route,code}
	duration    *prometheus.HistogramVec // meshnode_http_request_duration_seconds{route}
	rateLimited *prometheus.CounterVec   // meshnode_http_rate_limited_total{scope}
	byRoute     routeCache               // requests and duration children, memoised
}

func newHTTPMetrics(reg prometheus.Registerer, ln *httpx.ListenerStats) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_http_requests_total", Help: "Node API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshnode_http_request_duration_seconds", Help: "Node API request duration by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshnode_http_rate_limited_total", Help: "POST /v1/task refused by the per-IP or per-Origin limit.",
		}, []string{"scope"}),
	}
	m.byRoute.m = m
	if reg == nil {
		return m, nil
	}
	counter := func(name, help string, v interface{ Load() uint64 }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rateLimited,
		counter("meshnode_http_connections_refused_total", "Connections closed at accept: the source was at its per-IP cap.", &ln.Refused),
		counter("meshnode_http_accept_errors_total", "Errors accepting connections on the node API.", &ln.AcceptErrors),
		counter("meshnode_http_tls_handshake_errors_total", "Failed TLS handshakes on the node API.", &ln.TLSHandshakeErrors),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering http metrics: %w", err)
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing answered 200
	}
	c := m.byRoute.get(route, status)
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
}
