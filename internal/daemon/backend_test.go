package daemon

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshnode/meshnode/internal/config"
)

// Autodetection probes only the address backend.detect names, and "off"
// (the test profile's default) probes nothing: a test never talks to an
// Ollama it did not start.
func TestBuildBackendDetectIsInjectable(t *testing.T) {
	var hits atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/api/tags" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"models":[{"name":"llama3.2:latest"}]}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(fake.Close)

	cfg, err := config.Defaults(config.ProfileTest)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backend.Detect != config.DetectOff {
		t.Fatalf("test profile detects %q, want off", cfg.Backend.Detect)
	}
	be, err := buildBackend(context.Background(), &cfg, t.TempDir(), "test", discard())
	if err != nil || be.be.Name() != "echo" || hits.Load() != 0 {
		t.Fatalf("detect off: backend %v err %v, %d probes", be, err, hits.Load())
	}

	cfg.Backend.Detect = strings.TrimPrefix(fake.URL, "http://")
	be, err = buildBackend(context.Background(), &cfg, t.TempDir(), "test", discard())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(be.describe, "ollama at "+fake.URL) || hits.Load() != 1 {
		t.Fatalf("detect %s: %q after %d probes", cfg.Backend.Detect, be.describe, hits.Load())
	}
}
