package federation

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// maxRequestBody caps federation request bodies (a replica registration is
// a few hundred bytes).
const maxRequestBody = 16 << 10

// writeJSON writes v with status; encoding errors cannot be reported to a
// client that already has a status line, so they are only logged.
func writeJSON(w http.ResponseWriter, log *slog.Logger, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		log.Error("encoding response", "error", err)
		writeError(w, wire.NewError(wire.CodeInternal, "internal error"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes the IICP error envelope {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, e *wire.Error) {
	body, _ := json.Marshal(e.Envelope())
	w.Header().Set("Content-Type", "application/json")
	if e.Code == wire.CodeE046 || e.Status() == http.StatusServiceUnavailable {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "30")
		}
	}
	w.WriteHeader(e.Status())
	_, _ = w.Write(body)
}

// recoverer turns a panic into a structured 500 without a stack trace on
// the wire (STYLE §9). The log gets the stack but never the panic value,
// which may hold request content (SEC-LOG-01).
func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panic", "path", r.URL.Path, "stack", string(debug.Stack()))
				writeError(w, wire.NewError(wire.CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// methodOnly answers 405 with the error envelope for other methods.
func methodOnly(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, wire.NewError(wire.CodeMethodNotAllowed, "method not allowed"))
			return
		}
		h(w, r)
	}
}

// remoteIP is the connection's source address (no forwarded headers: the
// federation endpoints rate-limit the direct peer).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// windowLimiter allows n requests per key per window. The key map is
// bounded: when full, expired windows are dropped first and, failing that,
// new keys are refused (fail closed under a key-flooding attack).
type windowLimiter struct {
	n      int
	window time.Duration
	max    int

	mu   sync.Mutex
	keys map[string]*windowCount
}

type windowCount struct {
	start time.Time
	count int
}

const maxLimiterKeys = 10000

func newWindowLimiter(n int, window time.Duration) *windowLimiter {
	return &windowLimiter{n: n, window: window, max: maxLimiterKeys, keys: map[string]*windowCount{}}
}

// allow records one request for key and reports whether it is within the
// limit, with the seconds until the window resets when it is not.
func (l *windowLimiter) allow(key string, now time.Time) (bool, int64) {
	if l == nil || l.n <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.keys[key]
	if !ok || now.Sub(c.start) >= l.window {
		if !ok && len(l.keys) >= l.max {
			for k, v := range l.keys {
				if now.Sub(v.start) >= l.window {
					delete(l.keys, k)
				}
			}
			if len(l.keys) >= l.max {
				return false, int64(l.window.Seconds())
			}
		}
		c = &windowCount{start: now}
		l.keys[key] = c
	}
	c.count++
	if c.count > l.n {
		return false, int64(c.start.Add(l.window).Sub(now).Seconds()) + 1
	}
	return true, 0
}

// rateLimited writes the rate_limited envelope with Retry-After.
func rateLimited(w http.ResponseWriter, retryAfter int64) {
	w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
	e := wire.NewError(wire.CodeRateLimited, "rate limit exceeded")
	e.RetryAfter = retryAfter
	writeError(w, e)
}
