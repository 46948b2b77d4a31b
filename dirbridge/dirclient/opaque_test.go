package dirclient

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/httperr"
	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
	"github.com/meshnode/meshnode/wire"
)

// garbageCanary stands for bytes a peer sent back (which may echo a task
// payload or a token): net/http quotes a malformed status line verbatim.
const garbageCanary = "canary-5be2-echoed-payload"

func privateHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// The directory client's errors are logged (session.go, internal/daemon): a
// garbage answer's bytes must not reach the error text, while the failure
// still classifies as unavailable and the cause stays reachable.
func TestDirectoryErrorHidesGarbageResponseBytes(t *testing.T) {
	c, err := New(httperrtest.GarbageServer(t, garbageCanary), WithHTTPClient(privateHTTPClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(context.Background(), &wire.RegisterRequest{Endpoint: "http://x"})
	if err == nil {
		t.Fatal("garbage answer accepted")
	}
	var opaque *httperr.OpaqueError
	if !errors.As(err, &opaque) || !strings.Contains(opaque.Unwrap().Error(), garbageCanary) {
		t.Fatalf("test premise: net/http no longer quotes the bytes (err %v)", err)
	}
	if strings.Contains(err.Error(), garbageCanary) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %q", err)
	}
}
