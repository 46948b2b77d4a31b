package federation

import (
	"net/http"
	"time"

	"github.com/meshnode/meshnode/internal/httpx"
	"github.com/meshnode/meshnode/wire"
)

// maxRequestBody caps federation request bodies (a replica registration is
// a few hundred bytes).
const maxRequestBody = 16 << 10

// methodOnly answers 405 with the error envelope for other methods.
func methodOnly(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			httpx.WriteError(w, wire.NewError(wire.CodeMethodNotAllowed, "method not allowed"))
			return
		}
		h(w, r)
	}
}

// sourceKey is the rate-limit key of the connection's source (no
// forwarded headers: the federation endpoints limit the direct peer).
func sourceKey(r *http.Request) string { return httpx.SourceKey(r.RemoteAddr) }

// rateLimited answers 429 with Retry-After.
func rateLimited(w http.ResponseWriter, wait time.Duration) {
	httpx.RateLimited(w, "rate limit exceeded", wait)
}

// unavailable is a 503 error with the federation's Retry-After of 30 s.
func unavailable(code wire.Code, msg string) *wire.Error {
	e := wire.NewError(code, msg)
	e.RetryAfter = 30
	return e
}
