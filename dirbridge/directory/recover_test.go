package directory

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// A handler panic becomes the structured 500 envelope; the log records the
// panic with a stack but never its value, which may hold request content
// or a token (SEC-LOG-01).
func TestRecovererLogsNoPanicValue(t *testing.T) {
	const canary = "canary-3e1d-node-token"
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(canary) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/heartbeat", nil))

	var env wire.Envelope
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error == nil ||
		rec.Code != http.StatusInternalServerError || env.Error.Code != wire.CodeInternal {
		t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	got := logs.String()
	if !strings.Contains(got, "handler panic") || !strings.Contains(got, "stack=") {
		t.Fatalf("panic not logged with a stack: %q", got)
	}
	if strings.Contains(got, canary) || strings.Contains(rec.Body.String(), canary) {
		t.Fatalf("panic value leaked: log %q body %q", got, rec.Body.String())
	}
}
