package directory

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// methods maps HTTP methods to handlers for one path.
type methods map[string]http.HandlerFunc

// routes is the one route table. Every /v1 path is also served under
// /api/v1 because deployed clients use an /api base URL.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	v1 := map[string]methods{
		"/v1/register":             {http.MethodPost: s.handleRegister, http.MethodDelete: s.handleDeregister},
		"/v1/deregister":           {http.MethodPost: s.handleDeregister},
		"/v1/heartbeat":            {http.MethodPost: s.handleHeartbeat},
		"/v1/discover":             {http.MethodGet: s.handleDiscover},
		"/v1/me":                   {http.MethodGet: s.handleMe},
		"/v1/node/{id}":            {http.MethodGet: s.handleNode},
		"/v1/registry/nodes/{id}":  {http.MethodGet: s.handleRegistryNode},
		"/v1/bootstrap":            {http.MethodGet: s.handleBootstrap},
		"/v1/stats":                {http.MethodGet: s.handleStats},
		"/v1/directory-key":        {http.MethodGet: s.handleDirectoryKey},
		"/v1/consumer-token":       {http.MethodPost: s.handleConsumerToken},
		"/v1/membership":           {http.MethodPost: s.handleMembership},
		"/v1/membership/revoked":   {http.MethodGet: s.handleRevoked},
		"/v1/dispatch/ticket":      {http.MethodPost: s.handleTicket},
		"/v1/probe":                {http.MethodGet: s.handleProbe},
		"/v1/peers":                {http.MethodPost: s.handlePeers},
		"/v1/credits/balance":      {http.MethodGet: s.handleCredits},
		"/v1/credits/transactions": {http.MethodGet: s.handleCredits},
		"/v1/credits/award":        {http.MethodPost: s.handleCredits},
		"/v1/telemetry":            {http.MethodPost: s.handleTelemetry},
		"/v1/operator/rename":      {http.MethodPost: s.handleOperatorRename},
		"/v1/audit-report":         {http.MethodPost: s.handleAuditReport},
		"/v1/operator/challenge":   {http.MethodPost: s.handleOperatorChallenge},
		"/v1/operator/key/rotate":  {http.MethodPost: s.handleOperatorKeyRotate},
	}
	for p, m := range v1 {
		s.handle(mux, p, m)
		s.handle(mux, "/api"+p, m)
	}
	s.handle(mux, "/iicp/health", methods{http.MethodGet: s.handleHealth})
	s.handle(mux, "/readyz", methods{http.MethodGet: s.handleReady})
	metricsH := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	s.handle(mux, "/metrics", methods{http.MethodGet: metricsH.ServeHTTP})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, wire.NewError(wire.CodeNotFound, "no such route"))
	})
	return httpx.Recoverer(s.log, mux)
}

// handle registers one path with a JSON 405 for other methods (the
// standard mux would answer in plain text) and per-route metrics.
func (s *Server) handle(mux *http.ServeMux, pattern string, m methods) {
	allowed := make([]string, 0, len(m)+1)
	for k := range m {
		allowed = append(allowed, k)
	}
	if _, ok := m[http.MethodGet]; ok {
		allowed = append(allowed, http.MethodHead)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	route := strings.TrimPrefix(pattern, "/api")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		if ok {
			h(sw, r)
		} else {
			sw.Header().Set("Allow", allow)
			httpx.WriteError(sw, wire.NewError(wire.CodeMethodNotAllowed, "method not allowed on this route"))
		}
		s.metrics.requests.WithLabelValues(route, statusText(sw.status)).Inc()
		took := time.Since(start)
		s.metrics.latency.WithLabelValues(route).Observe(took.Seconds())
		if route == "/v1/discover" {
			s.metrics.discoverMs.Observe(float64(took) / float64(time.Millisecond))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// statusText keeps the code label a small fixed set.
func statusText(code int) string {
	if code >= 100 && code < 600 {
		return http.StatusText(code)
	}
	return "other"
}
