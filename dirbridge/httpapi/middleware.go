package httpapi

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

// reqInfo is the per-request state the middleware shares. In the chain it
// lives in the recorder the outermost middleware makes, so no Request or
// context is copied to carry it; a middleware used on its own (without a
// recorder) keeps it in the context instead.
type reqInfo struct {
	requestID string
	traceID   string
	// hdr backs the X-Request-Id and X-IICP-Trace-Id header values, so
	// echoing them allocates no slice of their own.
	hdr [2]string
}

// headerValue stores v in slot i of ri's header storage and returns it as
// a header value (len == cap: an append elsewhere copies, never writes here).
func (ri *reqInfo) headerValue(i int, v string) []string {
	ri.hdr[i] = v
	return ri.hdr[i : i+1 : i+1]
}

// infoOf returns the request's shared state: the recorder's, else the
// context's, else an empty one.
func infoOf(w http.ResponseWriter, r *http.Request) *reqInfo {
	if rec, ok := w.(*recorder); ok {
		return &rec.info
	}
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// recorder remembers the status written, for the access log, metrics and
// the recover middleware (which must not write twice), and carries the
// request's reqInfo.
type recorder struct {
	http.ResponseWriter
	status int
	info   reqInfo
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
				httpx.Recovered(s.log, rec, r, rec.status != 0, "request_id", rec.info.requestID)
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
		if rec, ok := w.(*recorder); ok {
			rec.info.requestID = id
			w.Header()["X-Request-Id"] = rec.info.headerValue(0, id)
			next.ServeHTTP(w, r)
			return
		}
		w.Header()["X-Request-Id"] = []string{id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &reqInfo{requestID: id})))
	})
}

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
		ri := infoOf(w, r)
		ri.traceID = id
		w.Header()[hdrTraceID] = ri.headerValue(1, id)
		next.ServeHTTP(w, r)
	})
}

// parseTraceparent returns the trace-id of a W3C traceparent
// (version-traceid-parentid-flags, lowercase hex, W3C Trace Context §3.2).
// Version ff and all-zero IDs are invalid; future versions may append fields.
func parseTraceparent(v string) (string, bool) {
	// 2+1+32+1+16+1+2 = 55 bytes; a later version may go on after a '-'.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || len(v) > 55 && v[55] != '-' {
		return "", false
	}
	ver, trace, parent, flags := v[:2], v[3:35], v[36:52], v[53:55]
	if ver == "ff" || (ver == "00" && len(v) != 55) {
		return "", false
	}
	if !lowerHex(ver) || !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) {
		return "", false
	}
	if strings.Trim(trace, "0") == "" || strings.Trim(parent, "0") == "" {
		return "", false
	}
	return trace, true
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
	var raw [16]byte
	var out [32]byte
	n = min(n, len(raw))
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(raw[i:], rand.Uint64())
	}
	hex.Encode(out[:], raw[:n])
	return string(out[:2*n])
}

// accessLog logs one line per request at debug: route (not the raw path,
// which is caller text), status, duration, request ID.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r) // the production level: no line, no clock read
			return
		}
		start := time.Now()
		rec, ok := w.(*recorder)
		if !ok {
			rec = &recorder{ResponseWriter: w}
		}
		next.ServeHTTP(rec, r)
		s.log.Debug("http", "method", r.Method, "route", routeLabel(r), "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "request_id", rec.info.requestID)
	})
}
