package nodeapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/nodeapi"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/wire"
)

// SEC-TLS-01: TLS 1.3 only; a TLS 1.2 client cannot connect. The generated
// certificate persists (key 0600) and is reused on the next start.
func TestSEC_TLS_01_TLS13OnlyAndPersistentCert(t *testing.T) {
	dir := t.TempDir()
	h := startNode(t, harnessConfig{maxConc: 1, apiOpts: []nodeapi.Option{nodeapi.WithSelfSignedDir(dir)}})
	pool := x509.NewCertPool()
	pool.AddCert(h.srv.TLSConfig().Certificates[0].Leaf)
	addr := h.srv.Addr().String()

	old, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, ServerName: "127.0.0.1"})
	if err == nil {
		old.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS 1.3 handshake: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x", v)
	}
	c.Close()

	st, err := os.Stat(filepath.Join(dir, "nodeapi-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, st.Mode())
	}
	again, err := nodeapi.New(h.eng, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithSelfSignedDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.TLSConfig().Certificates[0].Certificate[0], h.srv.TLSConfig().Certificates[0].Certificate[0]) {
		t.Fatal("certificate regenerated instead of reused")
	}
}

func TestTLSConfigRequired(t *testing.T) {
	eng := fakeEngine{}
	cases := []struct {
		name string
		opts []nodeapi.Option
		ok   bool
	}{
		// No certificate and no dev mode: refuse rather than serve plaintext.
		{"no tls", []nodeapi.Option{nodeapi.WithAddr("127.0.0.1:0")}, false},
		// Plaintext dev mode only on loopback.
		{"dev all interfaces", []nodeapi.Option{nodeapi.WithAddr(":0"), nodeapi.WithPlaintextDev()}, false},
		{"dev 0.0.0.0", []nodeapi.Option{nodeapi.WithAddr("0.0.0.0:0"), nodeapi.WithPlaintextDev()}, false},
		{"dev loopback", []nodeapi.Option{nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev()}, true},
		{"dev localhost", []nodeapi.Option{nodeapi.WithAddr("localhost:0"), nodeapi.WithPlaintextDev()}, true},
		{"missing cert files", []nodeapi.Option{nodeapi.WithTLSFiles("/nonexistent/c.pem", "/nonexistent/k.pem")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := nodeapi.New(eng, tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// fakeEngine stands in for the engine only where the test is about the
// HTTP layer itself (middleware, config); task behaviour is always tested
// with the real engine.
type fakeEngine struct {
	panicOn string
}

func (f fakeEngine) Execute(_ context.Context, c *wire.Call, _ wire.Caller) *wire.Response {
	if f.panicOn != "" {
		panic(f.panicOn)
	}
	return &wire.Response{TaskID: c.TaskID, Status: wire.StatusSuccess, Result: json.RawMessage(`{}`)}
}

func (fakeEngine) Health(context.Context) wire.Health { return wire.Health{Status: "ok"} }

func TestRecoverTurnsPanicInto500(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	srv, err := nodeapi.New(fakeEngine{panicOn: "secret-canary-in-panic"}, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev(),
		nodeapi.WithLogger(slogJSON(logs)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(taskBody("x"))
	req := httptest.NewRequest(http.MethodPost, "/v1/task", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"internal_error"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	assertNoLeak(t, rec.Body.Bytes())
	if strings.Contains(logs.String(), "secret-canary-in-panic") {
		t.Fatal("panic value logged")
	}
	if !strings.Contains(logs.String(), "handler panic") {
		t.Fatal("panic not logged")
	}
}

func TestPlaintextDevServesOnLoopback(t *testing.T) {
	srv, err := nodeapi.New(fakeEngine{}, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev())
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv)
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %q", srv.URL())
	}
	resp, err := http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

// Serve(ctx) shuts down gracefully: a task in flight when ctx ends still
// gets its RESPONSE, then Serve returns nil.
func TestGracefulShutdownFinishesInFlightTask(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	srv, err := nodeapi.New(h.eng, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	h.llm.hold()
	body, _ := json.Marshal(taskBody("x"))
	got := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL()+"/v1/task", "application/json", bytes.NewReader(body))
		if err != nil {
			got <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	waitFor(t, "task in flight", func() bool { return h.llm.inFlight.Load() == 1 })
	cancel()
	h.llm.release()
	if code := <-got; code != 200 {
		t.Fatalf("in-flight task got %d", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestCBORRoundTrip(t *testing.T) {
	h := startNode(t, harnessConfig{maxConc: 1})
	call := &wire.Call{TaskID: newUUID(), Intent: wire.IntentChat,
		Payload:     json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`),
		Constraints: wire.Constraints{TimeoutMs: 5000}, Auth: &wire.Auth{NodeToken: testToken}}
	body, err := wire.EncodeCallCBOR(call)
	if err != nil {
		t.Fatal(err)
	}
	r := h.do(t, http.MethodPost, "/v1/task", body, map[string]string{"Content-Type": wire.MediaTypeCBOR})
	if r.status != 200 || r.header.Get("Content-Type") != wire.MediaTypeCBOR {
		t.Fatalf("%d %q", r.status, r.header.Get("Content-Type"))
	}
	resp, werr := wire.DecodeResponseCBOR(r.body)
	if werr != nil || resp.TaskID != call.TaskID || resp.Status != wire.StatusSuccess || resp.ModelUsed != "test-model" {
		t.Fatalf("CBOR response %+v %v", resp, werr)
	}
	// Same CALL again: the 409 error comes back in CBOR too (iicp-cbor-wire.md §5).
	r = h.do(t, http.MethodPost, "/v1/task", body, map[string]string{"Content-Type": wire.MediaTypeCBOR})
	if r.status != 409 || r.header.Get("Content-Type") != wire.MediaTypeCBOR {
		t.Fatalf("dup %d %q", r.status, r.header.Get("Content-Type"))
	}
	// Accept excluding CBOR gets JSON.
	call.TaskID = newUUID()
	body, _ = wire.EncodeCallCBOR(call)
	r = h.do(t, http.MethodPost, "/v1/task", body, map[string]string{"Content-Type": wire.MediaTypeCBOR, "Accept": "application/json"})
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" || r.json(t)["task_id"] != call.TaskID {
		t.Fatalf("JSON for CBOR request: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	// Garbage CBOR: a CBOR error envelope, no panic.
	r = h.do(t, http.MethodPost, "/v1/task", []byte{0xbf, 0x01}, map[string]string{"Content-Type": wire.MediaTypeCBOR})
	if r.status != 422 || r.header.Get("Content-Type") != wire.MediaTypeCBOR {
		t.Fatalf("garbage CBOR: %d %q", r.status, r.header.Get("Content-Type"))
	}
}

// The per-Origin and per-IP limits on POST /v1/task (iicp-core.md §3.1).
func TestRateLimitPerOriginAndIP(t *testing.T) {
	now := time.Unix(1000, 0)
	srv, err := nodeapi.New(fakeEngine{}, nodeapi.WithAddr("127.0.0.1:0"), nodeapi.WithPlaintextDev(),
		nodeapi.WithRateLimits(60, 2, 60, 1), nodeapi.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	post := func(remote, origin string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(taskBody("x"))
		req := httptest.NewRequest(http.MethodPost, "/v1/task", bytes.NewReader(body))
		req.RemoteAddr = remote
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	// Per IP: burst 2, then 429 with Retry-After; another IP is unaffected.
	for i := range 2 {
		if rec := post("203.0.113.7:5000", ""); rec.Code != 200 {
			t.Fatalf("ip request %d: %d", i, rec.Code)
		}
	}
	rec := post("203.0.113.7:5001", "")
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), "rate_limited") || rec.Header().Get("Retry-After") != "2" { // burst 2 at 60/min: 2 per 2 s
		t.Fatalf("ip over limit: %d %s ra=%q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if rec := post("198.51.100.1:5000", ""); rec.Code != 200 {
		t.Fatalf("other ip: %d", rec.Code)
	}
	// IPv6 callers are keyed by /64.
	post("[2001:db8::1]:1", "")
	post("[2001:db8::2]:1", "")
	if rec := post("[2001:db8::3]:1", ""); rec.Code != 429 {
		t.Fatalf("same /64: %d", rec.Code)
	}
	// Per Origin, even from loopback (a browser on this host): burst 1.
	if rec := post("127.0.0.1:1", "https://evil.example"); rec.Code != 200 {
		t.Fatalf("origin first: %d", rec.Code)
	}
	if rec := post("127.0.0.1:2", "https://evil.example"); rec.Code != 429 {
		t.Fatalf("origin over limit: %d", rec.Code)
	}
	// Loopback without Origin (the operator's proxy) is not IP-limited.
	for range 5 {
		if rec := post("127.0.0.1:3", ""); rec.Code != 200 {
			t.Fatalf("loopback limited: %d", rec.Code)
		}
	}
	// The budget comes back once the window (burst/rate = 2 s) has passed.
	now = now.Add(2 * time.Second)
	if rec := post("203.0.113.7:5002", ""); rec.Code != 200 {
		t.Fatalf("after refill: %d", rec.Code)
	}
}

// TASK-1 (errata v1.5.2) over HTTP: X-IICP-Consumer-Token authorizes a CALL
// without auth.node_token.
func TestTASK_1_ConsumerTokenHeader(t *testing.T) {
	seed := bytes.Repeat([]byte{9}, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	h := startNode(t, harnessConfig{maxConc: 1, engineOpts: []node.Option{node.WithDirectoryKeys(key.Public().(ed25519.PublicKey))}})
	claims, _ := json.Marshal(map[string]any{"v": 1, "iss": "https://dir.test", "sub": "caller", "aud": testNodeID,
		"intent": wire.IntentChat, "iat": time.Now().Unix(), "exp": time.Now().Unix() + 300})
	b64 := base64.RawURLEncoding.EncodeToString(claims)
	tok := b64 + "." + hex.EncodeToString(ed25519.Sign(key, []byte("iicp:consumer-token:v1\n"+b64)))
	if r := h.postTask(t, taskBodyNoAuth(), map[string]string{"X-IICP-Consumer-Token": tok}); r.status != 200 {
		t.Fatalf("consumer token: %d %s", r.status, r.body)
	}
	bad := tok[:len(tok)-1] + "0"
	if strings.HasSuffix(tok, "0") {
		bad = tok[:len(tok)-1] + "1"
	}
	if r := h.postTask(t, taskBodyNoAuth(), map[string]string{"X-IICP-Consumer-Token": bad}); r.status != 401 {
		t.Fatalf("tampered consumer token: %d %s", r.status, r.body)
	}
}
