package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef"

type fakeBackend struct {
	lastCall CallRequest
	panicky  bool
}

func (f *fakeBackend) Status(context.Context) Status {
	if f.panicky {
		panic("boom at /home/secret/path")
	}
	return Status{NodeID: "n1", DirectoryMode: "embedded", ObservedSourceIP: "127.0.0.1"}
}
func (f *fakeBackend) Peers(context.Context) []Peer { return nil }
func (f *fakeBackend) NodeToken() string            { return "node-token" }
func (f *fakeBackend) Reregister() int              { return 1 }
func (f *fakeBackend) Call(_ context.Context, r CallRequest) (*CallResult, *wire.Error) {
	f.lastCall = r
	if r.Intent == "urn:iicp:intent:none:v1" {
		return nil, wire.NewError(wire.CodeE033, "no node serves this intent")
	}
	return &CallResult{Path: PathMesh, PeerID: "12D3Koo", Response: &wire.Response{TaskID: "t", Status: wire.StatusSuccess, Result: json.RawMessage(`{"ok":true}`)}}, nil
}

// startAdmin runs a server and returns a client wired through the state files.
func startAdmin(t *testing.T, b Backend) *Client {
	t.Helper()
	return startAdminLog(t, b, slog.New(slog.DiscardHandler))
}

func startAdminLog(t *testing.T, b Backend, log *slog.Logger) *Client {
	t.Helper()
	s, err := Listen("127.0.0.1:0", testToken, b, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	p, _ := paths.Resolve(t.TempDir(), func(string) string { return "" })
	if err := p.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	if err := WriteRuntime(p.Runtime, Runtime{PID: os.Getpid(), AdminURL: s.URL(), NodeID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.AdminToken, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Dial(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	b := &fakeBackend{}
	c := startAdmin(t, b)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.NodeID != "n1" || st.ObservedSourceIP != "127.0.0.1" {
		t.Fatalf("status %+v %v", st, err)
	}
	peers, err := c.Peers(ctx)
	if err != nil || peers == nil || len(peers) != 0 {
		t.Fatalf("peers %v %v", peers, err)
	}
	tok, err := c.NodeToken(ctx)
	if err != nil || tok != "node-token" {
		t.Fatalf("token %q %v", tok, err)
	}
	res, err := c.Call(ctx, CallRequest{Intent: wire.IntentChat, Payload: json.RawMessage(`{"messages":[]}`), TimeoutMs: 1000})
	if err != nil || res.Path != PathMesh || res.Response.Status != wire.StatusSuccess {
		t.Fatalf("call %+v %v", res, err)
	}
	if string(b.lastCall.Payload) != `{"messages":[]}` {
		t.Fatalf("payload not passed through: %s", b.lastCall.Payload)
	}
	_, err = c.Call(ctx, CallRequest{Intent: "urn:iicp:intent:none:v1"})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE033 {
		t.Fatalf("call error %v", err)
	}
}

// TestReregister: the CLI's `operator delegate` asks a running node to
// register again so the new delegation is sent now.
func TestReregister(t *testing.T) {
	c := startAdmin(t, &fakeBackend{})
	if n, err := c.Reregister(context.Background()); err != nil || n != 1 {
		t.Fatalf("reregister: %d %v", n, err)
	}
}

func TestAuthAndGuards(t *testing.T) {
	c := startAdmin(t, &fakeBackend{})
	tests := []struct {
		name   string
		auth   string
		method string
		path   string
		body   string
		status int
	}{
		// No token: refused (other local users cannot use the node).
		{"no token", "", "GET", "/admin/v1/status", "", 401},
		// Wrong token: refused.
		{"wrong token", "Bearer nope", "GET", "/admin/v1/token", "", 401},
		// Unknown route.
		{"unknown", "Bearer " + testToken, "GET", "/admin/v1/nope", "", 404},
		// Malformed call body: structured 422, not a crash.
		{"bad call", "Bearer " + testToken, "POST", "/admin/v1/call", "{not json", 422},
		// Oversize call body: 413.
		{"oversize", "Bearer " + testToken, "POST", "/admin/v1/call", `{"payload":"` + strings.Repeat("x", maxCallBody) + `"}`, 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, c.Runtime.AdminURL+tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 404 {
				var env wire.Envelope
				if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Error == nil || env.Error.Code == "" {
					t.Fatalf("not an IICP error envelope: %v", err)
				}
			}
		})
	}
}

// A panic becomes a structured 500 without the panic text (which may hold
// paths), and the log says a panic happened with a stack but never the
// panic value: the call route carries task payloads (SEC-LOG-01).
func TestPanicIsContained(t *testing.T) {
	var logs testutil.SyncBuffer
	c := startAdminLog(t, &fakeBackend{panicky: true}, slog.New(slog.NewTextHandler(&logs, nil)))
	req, _ := http.NewRequest("GET", c.Runtime.AdminURL+"/admin/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env wire.Envelope
	_ = json.NewDecoder(resp.Body).Decode(&env)
	if resp.StatusCode != 500 || env.Error == nil || strings.Contains(env.Error.Message, "/home") {
		t.Fatalf("status %d env %+v", resp.StatusCode, env.Error)
	}
	got := logs.String()
	if !strings.Contains(got, "handler panic") || !strings.Contains(got, "stack=") {
		t.Fatalf("panic not logged with a stack: %q", got)
	}
	if strings.Contains(got, "boom") || strings.Contains(got, "/home/secret") {
		t.Fatalf("panic value reached the log: %q", got)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0"} {
		if _, err := Listen(addr, testToken, &fakeBackend{}, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("listened on %s", addr)
		}
	}
	if _, err := Listen("127.0.0.1:0", "short", &fakeBackend{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("accepted a short token")
	}
}

func TestNotRunning(t *testing.T) {
	p, _ := paths.Resolve(t.TempDir(), func(string) string { return "" })
	_ = p.EnsureDirs()
	if _, err := Dial(p); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no runtime file: %v", err)
	}
	// A stale runtime file (node crashed) pointing at a closed port.
	_ = WriteRuntime(p.Runtime, Runtime{AdminURL: "http://127.0.0.1:1"})
	_ = os.WriteFile(p.AdminToken, []byte(testToken), 0o600)
	c, err := Dial(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("dead endpoint: %v", err)
	}
}

// TestLifecycle_NewBindsNothing: New validates and builds the routes but
// binds nothing (a port another listener holds does not fail it); Listen
// reports the taken port; Close before Listen is harmless.
func TestLifecycle_NewBindsNothing(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	s, err := New(held.Addr().String(), testToken, &fakeBackend{}, nil)
	if err != nil {
		t.Fatalf("New bound (or tried to bind): %v", err)
	}
	if s.URL() != "" {
		t.Fatal("URL before Listen")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a taken port: %v, want EADDRINUSE", err)
	}
}
