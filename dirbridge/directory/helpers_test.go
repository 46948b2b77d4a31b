package directory

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// server's flusher, expiry and probe loops must end with Serve's context).
// The shared benchmark fixture is closed before the check.
func TestMain(m *testing.M) { goleak.VerifyTestMain(closingFixture{m}) }

// closingFixture runs the tests, then closes the benchmark fixture they
// may have built.
type closingFixture struct{ m *testing.M }

func (c closingFixture) Run() int {
	code := c.m.Run()
	if benchFix != nil {
		benchFix.close()
	}
	return code
}

// fakeClock is the injected clock: tests advance it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testCA is a CA generated per test run plus a leaf for *.meshtest.net.
type testCA struct {
	pem  []byte
	leaf tls.Certificate
}

var (
	caOnce sync.Once
	ca     testCA
)

func getCA(t testing.TB) testCA {
	t.Helper()
	caOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshnode test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		caCert, _ := x509.ParseCertificate(caDER)
		leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "meshtest.net"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			DNSNames: []string{"*.meshtest.net"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			KeyUsage: x509.KeyUsageDigitalSignature}
		leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
		ca = testCA{
			pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
			leaf: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
		}
	})
	return ca
}

// healthNode is a TLS /iicp/health fixture signed by the test CA.
type healthNode struct {
	srv     *httptest.Server
	port    string
	healthy atomic.Bool
}

func newHealthNode(t testing.TB) *healthNode {
	t.Helper()
	h := &healthNode{}
	h.healthy.Store(true)
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/iicp/health" || !h.healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	h.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected in some tests
	h.srv.TLS = &tls.Config{Certificates: []tls.Certificate{getCA(t).leaf}, MinVersion: tls.VersionTLS13}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	_, h.port, _ = net.SplitHostPort(h.srv.Listener.Addr().String())
	return h
}

// harness runs a real directory (TLS listener, SQLite file in a temp dir).
type harness struct {
	t      testing.TB
	s      *Server
	clock  *fakeClock
	client *http.Client
	base   string
	node   *healthNode
	cancel context.CancelFunc
	done   chan error
	cfg    Config
}

// testHosts are public-looking names the Resolve override maps to the fixture.
var testHosts = []string{"node1", "node2", "node3", "node4", "node5", "node6", "old", "new"}

func testConfig(t testing.TB, node *healthNode, dir string) Config {
	res := make([]string, 0, len(testHosts)+1)
	for _, h := range testHosts {
		res = append(res, h+".meshtest.net:"+node.port+":127.0.0.1")
	}
	// dead.meshtest.net:<closed port> is an unreachable endpoint.
	res = append(res, "dead.meshtest.net:"+closedPort(t)+":127.0.0.1")
	return Config{
		Listen: "127.0.0.1:0", StateDir: dir, Resolve: res, ExtraRootsPEM: [][]byte{getCA(t).pem},
		BcryptCost: 4, Version: "test",
	}
}

var (
	closedOnce sync.Once
	closedP    string
)

// closedPort is a loopback port with nothing listening.
func closedPort(t testing.TB) string {
	t.Helper()
	closedOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, closedP, _ = net.SplitHostPort(ln.Addr().String())
		ln.Close()
	})
	return closedP
}

// deadEndpoint is an endpoint whose health check cannot connect.
func deadEndpoint(t testing.TB) string { return "https://dead.meshtest.net:" + closedPort(t) }

func startHarness(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	node := newHealthNode(t)
	cfg := testConfig(t, node, t.TempDir())
	if mutate != nil {
		mutate(&cfg)
	}
	return startWith(t, node, cfg, newFakeClock())
}

func startWith(t testing.TB, node *healthNode, cfg Config, clock *fakeClock) *harness {
	t.Helper()
	return startWithLog(t, node, cfg, clock, io.Discard)
}

// startWithLog is startWith writing the server's log (text, debug level
// and up) to logOut.
func startWithLog(t testing.TB, node *healthNode, cfg Config, clock *fakeClock, logOut io.Writer) *harness {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, WithClock(clock.Now), WithLogger(logger))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	h := &harness{t: t, s: s, clock: clock, node: node, cfg: cfg, done: make(chan error, 1)}
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() { h.done <- s.Serve(ctx) }()
	tr := &http.Transport{ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 32}
	scheme := "http"
	if s.TLS() {
		scheme = "https"
		pool := x509.NewCertPool()
		certPEM, err := os.ReadFile(SelfSignedCertPath(cfg.StateDir))
		if err != nil {
			t.Fatalf("reading generated cert: %v", err)
		}
		pool.AppendCertsFromPEM(certPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	}
	h.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	h.base = scheme + "://" + s.Addr().String()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Error("Serve did not return")
	}
	h.cancel = nil
	h.client.CloseIdleConnections()
}

// endpoint is the fixture URL under a public-looking test host.
func (h *harness) endpoint(host string) string {
	return "https://" + host + ".meshtest.net:" + h.node.port
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON (%d): %s", r.status, r.body)
	}
	return m
}

// errCode returns error.code of an error envelope.
func (r resp) errCode(t testing.TB) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope (%d): %s", r.status, r.body)
	}
	c, _ := e["code"].(string)
	return c
}

func (h *harness) do(method, path string, body any, hdr map[string]string) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// regBody is a minimal valid REGISTER for host serving intents.
func (h *harness) regBody(host string, intents ...string) map[string]any {
	if len(intents) == 0 {
		intents = []string{"urn:iicp:intent:llm:chat:v1"}
	}
	caps := make([]map[string]any, 0, len(intents))
	for _, in := range intents {
		caps = append(caps, map[string]any{"intent": in, "models": []string{"llama3"}, "max_tokens": 8192})
	}
	return map[string]any{
		"endpoint": h.endpoint(host), "region": "eu-central", "capabilities": caps,
		"limits": map[string]any{"max_concurrent": 4, "tokens_per_min": 20000},
	}
}

// register registers body and returns node_id and node_token (201 required).
func (h *harness) register(body map[string]any) (string, string) {
	h.t.Helper()
	r := h.do(http.MethodPost, "/v1/register", body, nil)
	if r.status != http.StatusCreated {
		h.t.Fatalf("register: %d %s", r.status, r.body)
	}
	m := r.json(h.t)
	return m["node_id"].(string), m["node_token"].(string)
}

func (h *harness) heartbeat(id, tok string, extra map[string]any) resp {
	h.t.Helper()
	b := map[string]any{"node_id": id}
	for k, v := range extra {
		b[k] = v
	}
	return h.do(http.MethodPost, "/v1/heartbeat", b, bearerHdr(tok))
}

func (h *harness) discover(qs string) (resp, []map[string]any) {
	h.t.Helper()
	r := h.do(http.MethodGet, "/v1/discover?"+qs, nil, nil)
	if r.status != http.StatusOK {
		return r, nil
	}
	var body struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		h.t.Fatal(err)
	}
	return r, body.Nodes
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
