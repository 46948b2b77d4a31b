package federation

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
)

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
