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
	return RecovererAnswering(log, func(w http.ResponseWriter) {
		WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
	}, next)
}

// RecovererAnswering is Recoverer for servers that answer errors in another
// protocol's shape (the OpenAI API, MCP's JSON-RPC): the same logging and
// ErrAbortHandler rule, with answer writing the 500.
func RecovererAnswering(log *slog.Logger, answer func(http.ResponseWriter), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v) // net/http's own "abort the connection" signal
				}
				logPanic(log, r)
				answer(w)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// logPanic logs a recovered panic: route and stack, never the value.
func logPanic(log *slog.Logger, r *http.Request, attrs ...any) {
	log.Error("handler panic", append([]any{"route", r.URL.Path, "stack", string(debug.Stack())}, attrs...)...)
}

// Recovered handles a recovered handler panic: it is logged (route, stack
// and attrs; never the panic value) and answered with the internal error
// envelope unless the response header was already sent. Servers whose own
// middleware recovers (to record metrics) call it from their deferred
// recover, after re-raising http.ErrAbortHandler as Recoverer does.
func Recovered(log *slog.Logger, w http.ResponseWriter, r *http.Request, headerSent bool, attrs ...any) {
	logPanic(log, r, attrs...)
	if !headerSent {
		WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
	}
}
