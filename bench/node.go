package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/wire"
)

// taskTimeoutMs is every benchmark CALL's timeout_ms: far above any
// latency the benchmark expects, so a timeout is a real failure.
const taskTimeoutMs = 30_000

// nodeStack is one real node: the engine with the production OpenAI
// backend client (its own pooled transport) in front of the test backend,
// and the HTTP bridge on loopback, plaintext and TLS. The mesh scenario
// adds a libp2p host serving the same engine.
type nodeStack struct {
	engine *node.Engine
	token  string // node_token callers present; LOG-FORBIDDEN
	nodeID string
	key    ed25519.PrivateKey // the node_id and the mesh peer ID; LOG-FORBIDDEN
	router *backend.Router

	mu      sync.Mutex
	servers []func() error // stop functions, run in reverse by close
	tmp     string
	bridges map[bool]*bridge // by TLS, started on first use
}

// bridge is a running HTTP bridge and a caller-side client for it.
type bridge struct {
	url    string
	client *http.Client
}

// bridgePath is POST /v1/task through the plaintext or TLS bridge,
// started on first use and shared by the scenarios.
func (s *nodeStack) bridgePath(useTLS bool, maxConc int) (*path, error) {
	s.mu.Lock()
	b := s.bridges[useTLS]
	s.mu.Unlock()
	if b == nil {
		url, client, err := s.startBridge(useTLS, maxConc)
		if err != nil {
			return nil, err
		}
		b = &bridge{url: url, client: client}
		s.mu.Lock()
		if s.bridges == nil {
			s.bridges = map[bool]*bridge{}
		}
		s.bridges[useTLS] = b
		s.mu.Unlock()
	}
	name := "node-http"
	if useTLS {
		name = "node-https"
	}
	return s.taskPath(name, b.url, b.client), nil
}

// newNodeStack builds the engine. maxConc is the engine's max_concurrent:
// sized above the benchmark's concurrency, because admission refusals
// (capacity_exceeded) are a policy outcome, not what is measured.
func newNodeStack(be *llmBackend, maxConc int) (*nodeStack, error) {
	oa, err := backend.NewOpenAI(be.url(), backend.WithUserAgent("meshnode-bench"))
	if err != nil {
		return nil, err
	}
	router, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: oa, Models: []string{benchModel}})
	if err != nil {
		return nil, err
	}
	// One key for the node_id and the mesh host's peer ID, as in
	// internal/identity: mesh callers refuse answers under any other node_id.
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &nodeStack{token: randomHex(32), key: key, nodeID: wire.NodeIDFromKey(key.Public().(ed25519.PublicKey)), router: router}
	// Production logs at info; formatting them to a discarded sink keeps
	// their cost in the measurement without flooding the terminal.
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.engine, err = node.New(node.Config{NodeID: s.nodeID, NodeToken: s.token, MaxConcurrent: maxConc, Version: "bench"},
		router, node.WithRegisterer(prometheus.NewRegistry()), node.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// startBridge serves the engine over POST /v1/task on 127.0.0.1:0,
// plaintext (dev) or TLS with a self-signed certificate, and returns a
// caller-side client that trusts it.
func (s *nodeStack) startBridge(useTLS bool, maxConc int) (string, *http.Client, error) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	opts := []httpapi.Option{httpapi.WithAddr("127.0.0.1:0"), httpapi.WithLogger(logger), httpapi.WithRegistry(prometheus.NewRegistry())}
	if useTLS {
		dir, err := s.tempDir()
		if err != nil {
			return "", nil, err
		}
		opts = append(opts, httpapi.WithSelfSignedDir(dir))
	} else {
		opts = append(opts, httpapi.WithPlaintextDev())
	}
	srv, err := httpapi.New(s.engine, opts...)
	if err != nil {
		return "", nil, err
	}
	if err := srv.Listen(); err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	s.onClose(func() error { cancel(); return <-done })

	tr := nodeTransport()
	tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, maxConc)
	if tc := srv.TLSConfig(); tc != nil {
		pool := x509.NewCertPool()
		pool.AddCert(tc.Certificates[0].Leaf)
		// HTTP/1.1 over TLS 1.3, as the deployed SDKs call nodes.
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
		tr.ForceAttemptHTTP2 = false
	}
	s.onClose(func() error { tr.CloseIdleConnections(); return nil })
	// No http.Client.Timeout, like the direct and proxy callers: it would
	// cost a timer goroutine per request that they do not pay. The node
	// answers every CALL by its timeout_ms (taskTimeoutMs) anyway.
	return srv.URL(), &http.Client{Transport: tr}, nil
}

// call builds the CALL for request seq of a path.
func (s *nodeStack) call(pathName string, seq int64) (*wire.Call, string) {
	want := prompt(pathName, seq)
	// The same chat body, built the same way, as the direct and proxy
	// callers send: what the callers do besides the CALL envelope is equal.
	payload, _ := json.Marshal(chatRequest{Model: benchModel, Messages: []chatMessage{{Role: "user", Content: want}}})
	return &wire.Call{
		TaskID: newUUID(), Intent: wire.IntentChat, Payload: payload,
		Constraints: wire.Constraints{TimeoutMs: taskTimeoutMs},
		Auth:        &wire.Auth{NodeToken: s.token},
	}, want
}

// taskPath is POST /v1/task through the HTTP bridge at base.
func (s *nodeStack) taskPath(name, base string, client *http.Client) *path {
	p := &path{name: name}
	target := base + "/v1/task"
	p.do = func(ctx context.Context, seq int64) error {
		taskID, want := newUUID(), prompt(p.name, seq)
		body, err := json.Marshal(s.callJSON(taskID, want))
		if err != nil {
			return err
		}
		status, raw, err := postJSON(ctx, client, target, body)
		if err != nil {
			return err
		}
		r, werr := wire.DecodeResponseJSON(raw)
		if werr != nil {
			return fmt.Errorf("HTTP %d: undecodable RESPONSE: %s", status, werr.Code)
		}
		return checkResponse(r, taskID, want)
	}
	return p
}

// benchCallJSON is the CALL s.call builds, in the exact bytes
// json.Marshal(*wire.Call) gives it (TestCallJSONMatchesWire), encoded in
// one pass: the payload is a struct, as the direct and proxy callers
// encode their chat body, not a RawMessage that encoding/json validates
// and compacts a second time. The caller runs in the benchmark's process,
// so its encoding cost would otherwise count against the node.
type benchCallJSON struct {
	TaskID      string      `json:"task_id"`
	Intent      string      `json:"intent"`
	Payload     chatRequest `json:"payload"`
	Constraints struct {
		TimeoutMs int `json:"timeout_ms"`
	} `json:"constraints"`
	Auth struct {
		NodeToken string `json:"node_token"`
	} `json:"auth"`
}

// callJSON is the CALL of task taskID asking the chat backend for want.
func (s *nodeStack) callJSON(taskID, want string) *benchCallJSON {
	c := &benchCallJSON{TaskID: taskID, Intent: wire.IntentChat,
		Payload: chatRequest{Model: benchModel, Messages: []chatMessage{{Role: "user", Content: want}}}}
	c.Constraints.TimeoutMs = taskTimeoutMs
	c.Auth.NodeToken = s.token
	return c
}

// checkResponse accepts only a successful RESPONSE to this very task.
func checkResponse(r *wire.Response, taskID, want string) error {
	if r.Status != wire.StatusSuccess {
		if r.Error != nil {
			return fmt.Errorf("status %s, code %s", r.Status, r.Error.Code)
		}
		return fmt.Errorf("status %s", r.Status)
	}
	if r.TaskID != taskID {
		return fmt.Errorf("task_id: %w", errMismatch)
	}
	return checkChat(r.Result, want)
}

func (s *nodeStack) onClose(f func() error) {
	s.mu.Lock()
	s.servers = append(s.servers, f)
	s.mu.Unlock()
}

func (s *nodeStack) tempDir() (string, error) {
	if s.tmp == "" {
		d, err := os.MkdirTemp("", "meshnode-bench-")
		if err != nil {
			return "", err
		}
		s.tmp = d
	}
	return s.tmp, nil
}

// close stops everything in reverse order of start and waits for the
// engine's backend calls to end.
func (s *nodeStack) close() error {
	s.mu.Lock()
	fs := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for i := len(fs) - 1; i >= 0; i-- {
		errs = append(errs, fs[i]())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs = append(errs, s.engine.Wait(ctx))
	if s.tmp != "" {
		errs = append(errs, os.RemoveAll(s.tmp))
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return wire.UUIDv4(b)
}
