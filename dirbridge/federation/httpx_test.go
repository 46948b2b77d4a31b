package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
	"github.com/meshnode/meshnode/wire"
)

// A handler panic becomes the structured 500 envelope, and the log records
// that it happened with a stack but never the panic value, which may hold
// request content (SEC-LOG-01).
func TestRecovererLogsNoPanicValue(t *testing.T) {
	const canary = "canary-7f3a-payload"
	var logs bytes.Buffer
	h := recoverer(slog.New(slog.NewTextHandler(&logs, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(canary)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/events", nil))

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

// A replica's errors talking to its seed are logged: the seed's raw bytes
// must not reach their text.
func TestReplicaSeedErrorsHideResponseBytes(t *testing.T) {
	const canary = "canary-0c6e-seed-bytes"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	r := &Replica{cfg: ReplicaConfig{SeedURL: httperrtest.GarbageServer(t, canary), HTTPClient: &http.Client{Transport: tr},
		PublicURL: "http://127.0.0.1:1", DID: "did:web:replica.example"}}
	_, _, getErr := r.seedGet(context.Background(), "/v1/events", false, 1<<10)
	regErr := r.register(context.Background())
	for _, err := range []error{getErr, regErr} {
		var opaque *httperr.OpaqueError
		if !errors.As(err, &opaque) || !strings.Contains(opaque.Unwrap().Error(), canary) {
			t.Fatalf("test premise: net/http no longer quotes the bytes (err %v)", err)
		}
		if strings.Contains(err.Error(), canary) {
			t.Fatalf("seed bytes in the error: %q", err)
		}
	}
}
