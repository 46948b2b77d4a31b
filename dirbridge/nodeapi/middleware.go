package nodeapi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// The middleware chain, outermost first: recover → request ID → CORS →
// trace → route. Each is a plain func(http.Handler) http.Handler.

type ctxKey struct{}

// reqInfo is the per-request state the middleware shares, stored in the
// context once (one Request copy instead of one per middleware).
type reqInfo struct {
	requestID string
	traceID   string
}

func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// recorder remembers the status written, for the access log, metrics and
// the recover middleware (which must not write twice).
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// recoverer turns a handler panic into a structured 500 (ERR-2: no stack in
// the body) and logs the stack — never the panic value, which may hold
// request text. It also records the access metrics.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // net/http's own "abort the connection" signal
				}
				httpx.Recovered(s.log, rec, r, rec.status != 0, "request_id", requestID(r.Context()))
			}
			s.met.observe(routeLabel(r), rec.status, time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// requestIDs accepts a sane X-Request-Id from the caller or makes one, and
// echoes it.
func requestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !safeID(id, 64) {
			id = randomHex(8)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{requestID: id})))
	})
}

func requestID(ctx context.Context) string { return info(ctx).requestID }

// CORS (iicp-core.md §3.1 note: nodes answer preflights for any origin so
// browser consumers can reach them; abuse is bounded by the per-origin rate
// limit, not by refusing origins). No credentials mode: tokens travel in
// headers the page sets explicitly, never in cookies.
const (
	corsMethods = "GET, POST, OPTIONS"
	corsHeaders = "Content-Type, Accept, Authorization, X-IICP-Consumer-Token, X-IICP-Trace-Id, X-Request-Id, traceparent, tracestate"
	corsExpose  = "Retry-After, X-IICP-Trace-Id, X-Request-Id"
	corsMaxAge  = "600"
)

func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", corsExpose)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tracing picks the request's trace ID from X-IICP-Trace-Id or the W3C
// traceparent header (TRACE-01/04), else makes one, and echoes it as
// X-IICP-Trace-Id (TRACE-02). The task handler overrides it with the CALL's
// own trace.trace_id when present.
func tracing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(hdrTraceID)
		if _, ok := wire.TraceIDBytes(id); !ok {
			id = ""
		}
		if id == "" {
			id, _ = parseTraceparent(r.Header.Get(hdrTraceparent))
		}
		if id == "" {
			id = randomHex(16)
		}
		w.Header().Set(hdrTraceID, id)
		info(r.Context()).traceID = id
		next.ServeHTTP(w, r)
	})
}

func traceID(ctx context.Context) string { return info(ctx).traceID }

// parseTraceparent returns the trace-id of a W3C traceparent
// (version-traceid-parentid-flags, lowercase hex, W3C Trace Context §3.2).
// Version ff and all-zero IDs are invalid; future versions may append fields.
func parseTraceparent(v string) (string, bool) {
	parts := strings.Split(v, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return "", false
	}
	if parts[0] == "ff" || (parts[0] == "00" && len(parts) != 4) {
		return "", false
	}
	for _, p := range parts[:4] {
		if !lowerHex(p) {
			return "", false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return "", false
	}
	return parts[1], true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// safeID accepts 1..max characters of [A-Za-z0-9._-].
func safeID(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// randomHex returns 2n hex digits. Request and trace IDs need uniqueness,
// not secrecy, so the fast runtime generator (ChaCha8) is enough.
func randomHex(n int) string {
	b := make([]byte, 0, 16)
	for len(b) < n {
		b = binary.LittleEndian.AppendUint64(b, rand.Uint64())
	}
	return hex.EncodeToString(b[:n])
}

// accessLog logs one line per request at debug: route (not the raw path,
// which is caller text), status, duration, request ID.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec, ok := w.(*recorder)
		if !ok {
			rec = &recorder{ResponseWriter: w}
		}
		next.ServeHTTP(rec, r)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("http", "method", r.Method, "route", routeLabel(r), "status", rec.status,
				"duration_ms", time.Since(start).Milliseconds(), "request_id", requestID(r.Context()))
		}
	})
}
