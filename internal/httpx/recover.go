package httpx

import (
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/meshnode/meshnode/wire"
)

// Recoverer turns a handler panic into a structured 500 without detail on
// the wire (STYLE §9). The log gets the route and the stack but never the
// panic value, which may hold request content or a token (SEC-LOG-01).
// http.ErrAbortHandler passes through: it is net/http's own signal.
func Recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v) // net/http's own "abort the connection" signal
				}
				Recovered(log, w, r, false)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Recovered handles a recovered handler panic: it is logged (route, stack
// and attrs; never the panic value) and answered with the internal error
// envelope unless the response header was already sent. Servers whose own
// middleware recovers (to record metrics) call it from their deferred
// recover, after re-raising http.ErrAbortHandler as Recoverer does.
func Recovered(log *slog.Logger, w http.ResponseWriter, r *http.Request, headerSent bool, attrs ...any) {
	log.Error("handler panic", append([]any{"route", r.URL.Path, "stack", string(debug.Stack())}, attrs...)...)
	if !headerSent {
		WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
	}
}
