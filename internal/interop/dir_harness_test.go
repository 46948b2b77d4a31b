package interop_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
)

// dirHarness is a real directory (dev mode: plaintext on loopback, so its
// liveness probe reaches a plaintext loopback node).
type dirHarness struct {
	s      *directory.Server
	base   string // http://127.0.0.1:PORT
	client *http.Client
}

func startDirectory(t testing.TB, mutate func(*directory.Config)) *dirHarness {
	t.Helper()
	cfg := directory.Config{Listen: "127.0.0.1:0", StateDir: t.TempDir(), Dev: true, BcryptCost: 4, Version: "interop",
		// One reported success leaves probation, so qos=interactive consumers
		// (the Rust client's default) see the node in these tests.
		ProbationMinTasks: 1}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := directory.New(cfg, directory.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("directory: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("directory: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	tr := &http.Transport{}
	d := &dirHarness{s: s, base: "http://" + s.Addr().String(), client: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("directory Serve: %v", err)
		}
	})
	return d
}

// do sends one request as an SDK would and returns status and body.
func (d *dirHarness) do(t testing.TB, method, rawURL, bearer string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(t, body))
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// withHost rewrites base to address the same listener by another host name.
func withHost(t testing.TB, base, host string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host + ":" + u.Port()
	return u.String()
}

// Dispatch route ticket verification exactly as the SDKs do it
// (iicp-client-python src/iicp_client/dispatch_ticket.py,
// iicp-client-rust src/dispatch_ticket.rs): "<payload_b64>.<128 hex sig>",
// Ed25519 over "iicp:dispatch-route-ticket:v1\n" + payload_b64, claims
// v=1, typ, iss, aud, node_id, intent, exp > now, jti 24 lowercase hex.
const (
	sdkTicketDomain   = "iicp:dispatch-route-ticket:v1\n"
	sdkTicketAudience = "iicp.directory.dispatch"
)

type sdkTicketClaims struct {
	V      int    `json:"v"`
	Typ    string `json:"typ"`
	Iss    string `json:"iss"`
	Aud    string `json:"aud"`
	JTI    string `json:"jti"`
	NodeID string `json:"node_id"`
	Intent string `json:"intent"`
	IAT    int64  `json:"iat"`
	Exp    int64  `json:"exp"`
}

func sdkVerifyTicket(token, pubHex, issuer, nodeID, intent string, now int64) (*sdkTicketClaims, bool) {
	payload, sigHex, ok := strings.Cut(token, ".")
	if !ok || len(sigHex) != 128 {
		return nil, false
	}
	pub, err := hex.DecodeString(pubHex)
	sig, err2 := hex.DecodeString(sigHex)
	if err != nil || err2 != nil || len(pub) != ed25519.PublicKeySize {
		return nil, false
	}
	if !ed25519.Verify(pub, []byte(sdkTicketDomain+payload), sig) {
		return nil, false
	}
	// Python pads and maps the URL alphabet; Rust uses URL_SAFE_NO_PAD.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return nil, false
	}
	var c sdkTicketClaims
	if json.Unmarshal(raw, &c) != nil {
		return nil, false
	}
	if c.V != 1 || c.Typ != "dispatch-route-ticket" || c.Iss != issuer || c.Aud != sdkTicketAudience ||
		c.NodeID != nodeID || c.Intent != intent || c.Exp <= now || c.IAT == 0 {
		return nil, false
	}
	if len(c.JTI) != 24 || strings.Trim(c.JTI, "0123456789abcdef") != "" {
		return nil, false
	}
	return &c, true
}

// pythonConsumerTokenBase reproduces the Python client's base computation
// for /api/v1/consumer-token (src/iicp_client/client.py
// _acquire_consumer_token: directory_url.rstrip("/api").rstrip("/")), a
// character-set strip, not a suffix strip.
func pythonConsumerTokenBase(directoryURL string) string {
	return strings.TrimRight(strings.TrimRight(directoryURL, "/api"), "/")
}
