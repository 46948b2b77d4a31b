package directory

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// A handler panic becomes the structured 500 envelope; the log records the
// panic with a stack but never its value, which may hold request content
// or a token (SEC-LOG-01).
func TestRecovererLogsNoPanicValue(t *testing.T) {
	const canary = "canary-3e1d-node-token"
	serve := func(log *slog.Logger) http.Handler {
		return (&Server{log: log}).recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(canary) }))
	}
	testutil.CheckRecovererHidesPanic(t, serve, http.MethodPost, "/v1/heartbeat", canary, string(wire.CodeInternal))
}
