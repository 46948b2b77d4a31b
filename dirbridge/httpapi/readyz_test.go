package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/meshnode/meshnode/wire"
)

// GET /readyz answers 503 while the backend is down and 200 otherwise;
// /iicp/health stays 200 (NODE-HEALTH-01) with status "degraded" and
// available=false meanwhile.
func TestNODE_HEALTH_01_ReadyzFollowsBackend(t *testing.T) {
	h := startNode(t, harnessConfig{})
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := h.client.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	health := func() wire.Health {
		t.Helper()
		code, b := get("/iicp/health")
		var hl wire.Health
		if code != http.StatusOK || json.Unmarshal(b, &hl) != nil {
			t.Fatalf("/iicp/health %d %s", code, b)
		}
		return hl
	}
	if code, b := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with a live backend: %d %s", code, b)
	}
	h.eng.ReportBackendHealth(false)
	if code, b := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the backend down: %d %s", code, b)
	}
	if hl := health(); hl.Status != "degraded" || hl.Available || hl.Backend == "" {
		t.Fatalf("health while down: %+v", hl)
	}
	h.eng.ReportBackendHealth(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery: %d", code)
	}
	if hl := health(); hl.Status != "ok" || !hl.Available {
		t.Fatalf("health after recovery: %+v", hl)
	}
}
