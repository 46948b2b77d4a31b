package httperr

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/httperr/httperrtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const canary = "canary-9d41-secret-bytes"

func get(t *testing.T, ctx context.Context, hc *http.Client, url string) error {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded; the case needs a transport failure", url)
	}
	return err
}

// net/http quotes a malformed status line verbatim; the opaque error must
// not, while the cause stays reachable.
func TestTransport_GarbageResponseBytesStayOut(t *testing.T) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	cause := get(t, context.Background(), hc, httperrtest.GarbageServer(t, canary))
	if !strings.Contains(cause.Error(), canary) {
		t.Fatalf("test premise: net/http no longer quotes the bytes (cause %v)", cause)
	}
	err := Transport("directory", cause)
	if strings.Contains(err.Error(), canary) || err.Error() != "directory transport failed" {
		t.Fatalf("err %q", err)
	}
	if !errors.Is(err, cause) {
		t.Fatal("cause lost behind Unwrap")
	}
}

func TestDescribe_Classes(t *testing.T) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"refused", func() error { return get(t, context.Background(), hc, closedURL) }, "cannot connect to node"},
		{"eof", func() error { return get(t, context.Background(), hc, httperrtest.RawServer(t, "")) }, "node closed the connection early"},
		{"untrusted", func() error { return get(t, context.Background(), hc, tlsSrv.URL) }, "node TLS certificate not trusted"},
		{"canceled", func() error { return get(t, canceled, hc, closedURL) }, "request to node canceled"},
		{"dns", func() error { return &net.DNSError{Err: "no such host", Name: "x.invalid"} }, "cannot resolve node host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cause := c.err()
			if got := Describe("node", cause); got != c.want {
				t.Fatalf("Describe(%v) = %q, want %q", cause, got, c.want)
			}
		})
	}
}

func TestTransport_ContextAndNil(t *testing.T) {
	if Transport("node", nil) != nil || Wrap("x", nil) != nil {
		t.Fatal("nil error must stay nil")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := Transport("backend", ctx.Err())
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "request to backend timed out" {
		t.Fatalf("err %v", err)
	}
}
