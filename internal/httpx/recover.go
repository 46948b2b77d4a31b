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
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("handler panic", "route", r.URL.Path, "stack", string(debug.Stack()))
			WriteError(w, wire.NewError(wire.CodeInternal, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}
