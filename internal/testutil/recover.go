package testutil

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// CheckRecovererHidesPanic serves one request (method, target) through
// serve(logger), a recoverer around a handler that panics with canary, and
// fails tb unless the answer is a 500 whose error envelope carries wantCode
// and the log records the panic ("handler panic", with a stack) but never
// its value, which may hold request content or a token (SEC-LOG-01). The
// caller builds the panicking handler, so no library code panics; wantCode
// is a string so this package stays standard-library only: pass
// string(wire.CodeInternal).
func CheckRecovererHidesPanic(tb testing.TB, serve func(*slog.Logger) http.Handler, method, target, canary, wantCode string) {
	tb.Helper()
	var logs bytes.Buffer
	h := serve(slog.New(slog.NewTextHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))

	var env struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error == nil ||
		rec.Code != http.StatusInternalServerError || env.Error.Code != wantCode {
		tb.Fatalf("status %d body %q", rec.Code, rec.Body.String())
	}
	got := logs.String()
	if !strings.Contains(got, "handler panic") || !strings.Contains(got, "stack=") {
		tb.Fatalf("panic not logged with a stack: %q", got)
	}
	if strings.Contains(got, canary) || strings.Contains(rec.Body.String(), canary) {
		tb.Fatalf("panic value leaked: log %q body %q", got, rec.Body.String())
	}
}
