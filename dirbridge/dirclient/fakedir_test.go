package dirclient

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// fakeDir is an in-test IICP-DIR directory: enough of iicp-dir.md §3.1–3.3
// and DIR-LIFECYCLE-01..06 to drive a Session, with knobs to misbehave.
type fakeDir struct {
	t  testing.TB
	mu sync.Mutex
	// nodes maps node_id to its current token ("" once deregistered).
	nodes map[string]string
	// registers records every REGISTER body, in order.
	registers []wire.RegisterRequest
	// heartbeats records every HEARTBEAT body with the time it arrived.
	heartbeats []wire.Heartbeat
	hbTimes    []time.Time
	regTimes   []time.Time
	// deregistered records deregistered node IDs.
	deregistered []string
	// failNext answers the next n requests with status (and Retry-After).
	failNext   int
	failStatus int
	retryAfter string
	// registerStatus, when set, answers every REGISTER with that status.
	registerStatus int
	registerCode   wire.Code
	nextHBms       int64
	observedIP     string
	srv            *httptest.Server
}

func newFakeDir(t testing.TB) *fakeDir {
	t.Helper()
	d := &fakeDir{t: t, nodes: map[string]string{}, nextHBms: 20, observedIP: "127.0.0.1"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/register", d.register)
	mux.HandleFunc("POST /v1/heartbeat", d.heartbeat)
	mux.HandleFunc("POST /v1/deregister", d.deregister)
	mux.HandleFunc("GET /v1/discover", d.discover)
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		if d.failNext > 0 {
			d.failNext--
			st, ra := d.failStatus, d.retryAfter
			d.mu.Unlock()
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			writeErr(w, st, wire.CodeUnavailable, "try later")
			return
		}
		d.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func writeErr(w http.ResponseWriter, status int, code wire.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.NewError(code, msg).Envelope())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func (d *fakeDir) register(w http.ResponseWriter, r *http.Request) {
	var req wire.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Endpoint == "" {
		writeErr(w, 422, wire.CodeValidationError, "bad register")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.registers = append(d.registers, req)
	d.regTimes = append(d.regTimes, time.Now())
	if d.registerStatus != 0 {
		writeErr(w, d.registerStatus, d.registerCode, "refused")
		return
	}
	cur, known := d.nodes[req.NodeID]
	// A presented current_node_token must match (DIR-LIFECYCLE-04 / E050).
	if req.CurrentNodeToken != "" && known && cur != req.CurrentNodeToken {
		writeErr(w, 401, wire.CodeUnauthorized, "invalid current_node_token")
		return
	}
	tok := newToken()
	d.nodes[req.NodeID] = tok
	writeJSON(w, 201, wire.RegisterAck{NodeID: req.NodeID, NodeToken: tok, Directory: d.srv.URL,
		ObservedSourceIP: d.observedIP, NextHeartbeatMs: d.nextHBms})
}

func (d *fakeDir) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb wire.Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		writeErr(w, 422, wire.CodeValidationError, "bad heartbeat")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	tok, ok := d.nodes[hb.NodeID]
	if !ok {
		writeErr(w, 404, wire.CodeNotFound, "unknown node")
		return
	}
	if tok == "" || bearer(r) != tok {
		writeErr(w, 401, wire.CodeUnauthorized, "bad token")
		return
	}
	d.heartbeats = append(d.heartbeats, hb)
	d.hbTimes = append(d.hbTimes, time.Now())
	writeJSON(w, 200, wire.Pong{OK: true, NextHeartbeatMs: d.nextHBms})
}

func (d *fakeDir) deregister(w http.ResponseWriter, r *http.Request) {
	var body struct {
		NodeID string `json:"node_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	d.mu.Lock()
	defer d.mu.Unlock()
	if tok := d.nodes[body.NodeID]; tok == "" || bearer(r) != tok {
		writeErr(w, 401, wire.CodeUnauthorized, "bad token")
		return
	}
	delete(d.nodes, body.NodeID)
	d.deregistered = append(d.deregistered, body.NodeID)
	writeJSON(w, 200, map[string]bool{"deregistered": true})
}

func (d *fakeDir) discover(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("intent") == "" {
		writeErr(w, 422, wire.CodeValidationError, "intent required")
		return
	}
	writeJSON(w, 200, wire.NodeList{Nodes: []wire.NodeSummary{{NodeID: "n1", Endpoint: "http://127.0.0.1:1", Score: 0.9, Available: true}}, Count: 1})
}

// snapshot copies the recorded state under the lock.
func (d *fakeDir) snapshot() (regs []wire.RegisterRequest, hbs []wire.Heartbeat, dereg []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]wire.RegisterRequest(nil), d.registers...),
		append([]wire.Heartbeat(nil), d.heartbeats...),
		append([]string(nil), d.deregistered...)
}

// eventually waits up to within for cond.
func eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	testutil.WaitFor(tb, within, what, cond)
}
