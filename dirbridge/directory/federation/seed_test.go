package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func getJSON(t *testing.T, url, token string, v any) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	code, body := send(t, req, token)
	if v != nil && code == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatal(err)
		}
	}
	return code, body
}

func postJSON(t *testing.T, url, token string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	return send(t, req, token)
}

// send does req with the bearer token, if any, and reads the whole answer.
func send(t *testing.T, req *http.Request, token string) (int, []byte) {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func errCode(b []byte) string {
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &env)
	return env.Error.Code
}

// didServer serves a DID document for its own did:web and /iicp/health.
func didServer(t *testing.T, withKey bool) (*httptest.Server, string) {
	t.Helper()
	sw := &swapHandler{}
	srv := httptest.NewServer(sw)
	t.Cleanup(srv.Close)
	did, _ := DIDWebFor(srv.URL)
	doc := NewDIDDocument(did, newKey(t).Public().(ed25519.PublicKey))
	if !withKey {
		doc.VerificationMethod[0].PublicKeyJwk.Crv = "P-256"
	}
	sw.h.Store(http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(doc)
	})))
	return srv, did
}

// TestDIR_FED_SeedEndpoints covers the seed's MUSTs over real HTTP:
// DIR-FED-07/09/10/14/15/16/17/19/EVENTCHAIN-01 and the replica lifecycle
// DIR-FED-11/13/22/23/24, E044 and E045.
func TestDIR_FED_SeedEndpoints(t *testing.T) {
	seed := newSeedEnv(t, false)
	for i := range 3 {
		seed.register(t, nodeID(i))
	}
	// DIR-FED-16: heartbeats are never federated.
	if _, err := seed.seed.Emit(context.Background(), Change{Type: "HEARTBEAT", Payload: map[string]any{"node_id": "x"}}); !errors.Is(err, ErrNotFederated) {
		t.Fatalf("HEARTBEAT emit: %v, want ErrNotFederated", err)
	}
	genesis := checkServedEvents(t, seed)
	rsrv, did := didServer(t, true)
	a1, a2 := checkReplicaHandshake(t, seed, genesis, RegisterReplicaRequest{DID: did, Endpoint: rsrv.URL, TrustTierRequest: "high"})
	checkReplicaDeregistration(t, seed.srv.URL, a1.ReplicaID, a2.ReplicaToken)

	// Validation failures (DIR-FED-11, E044).
	_, noKeyDID := didServer(t, false)
	for name, tc := range map[string]struct {
		req  RegisterReplicaRequest
		code string
	}{
		"unresolvable did": {RegisterReplicaRequest{DID: "did:web:127.0.0.1%3A1", Endpoint: rsrv.URL}, "IICP-E040"},
		"no Ed25519 key":   {RegisterReplicaRequest{DID: noKeyDID, Endpoint: rsrv.URL}, "IICP-E041"},
		"bad tier":         {RegisterReplicaRequest{DID: did, Endpoint: rsrv.URL, TrustTierRequest: "gold"}, "IICP-E044"},
	} {
		if code, b := postJSON(t, seed.srv.URL+"/v1/replicas/register", "", tc.req); code != 422 || errCode(b) != tc.code {
			t.Errorf("%s: %d %s, want 422 %s", name, code, b, tc.code)
		}
	}
}

// checkServedEvents: DIR-FED-07/09/10 and EVENTCHAIN-01, genesis_hash
// present, seq strictly increasing, required fields, the chain verifies,
// byte-identical across calls; a bad limit is a validation error. It
// returns the genesis hash.
func checkServedEvents(t *testing.T, seed *seedEnv) string {
	t.Helper()
	base := seed.srv.URL
	var er EventsResponse
	_, body1 := getJSON(t, base+"/v1/events?since_seq=0&limit=1000", "", &er)
	_, body2 := getJSON(t, base+"/v1/events?since_seq=0&limit=1000", "", nil)
	var raw1, raw2 struct {
		Events      json.RawMessage `json:"events"`
		GenesisHash string          `json:"genesis_hash"`
	}
	_ = json.Unmarshal(body1, &raw1)
	_ = json.Unmarshal(body2, &raw2)
	if !bytes.Equal(raw1.Events, raw2.Events) || raw1.GenesisHash != raw2.GenesisHash {
		t.Fatal("DIR-FED-EVENTCHAIN-01: two reads of the same range differ")
	}
	if er.GenesisHash == "" || er.GenesisHash != ChainHash(er.Events[0].Sig) || len(er.Events) != 3 || er.HeadSeq != 3 || er.NextSeq != 4 {
		t.Fatalf("events response %+v", er)
	}
	chain := NewChain(seed.seed.PublicKey(), seed.seed.DID(), 0, GenesisRoot)
	for i := range er.Events {
		if err := chain.Next(&er.Events[i]); err != nil {
			t.Fatalf("served chain does not verify: %v", err)
		}
	}
	if code, b := getJSON(t, base+"/v1/events?limit=abc", "", nil); code != 422 || errCode(b) != "validation_error" {
		t.Fatalf("bad limit: %d %s", code, b)
	}
	return er.GenesisHash
}

// checkReplicaHandshake: the §7.1 handshake is idempotent on did
// (DIR-FED-13/24) with genesis_hash parity (DIR-FED-14) and rotates the
// token (DIR-FED-23); the snapshot is at the head, genesis-matched
// (DIR-FED-15/17); the registry lists the replica (DIR-FED-19). It returns
// the first and the second acknowledgement.
func checkReplicaHandshake(t *testing.T, seed *seedEnv, genesis string, req RegisterReplicaRequest) (a1, a2 RegisterReplicaResponse) {
	t.Helper()
	base := seed.srv.URL
	code, b := postJSON(t, base+"/v1/replicas/register", "", req)
	if code != 200 || json.Unmarshal(b, &a1) != nil || a1.GenesisHash != genesis || a1.TrustTier != TrustLow || a1.SinceSeq != 0 {
		t.Fatalf("register: %d %s", code, b)
	}
	if code, b = postJSON(t, base+"/v1/replicas/register", "", req); code != 200 || json.Unmarshal(b, &a2) != nil ||
		a2.ReplicaID != a1.ReplicaID || a2.ReplicaToken == a1.ReplicaToken {
		t.Fatalf("re-register: %d %s", code, b)
	}
	if code, _ := getJSON(t, base+"/v1/snapshot", a1.ReplicaToken, nil); code != 401 {
		t.Fatalf("old token after rotation: %d", code)
	}
	var snap Snapshot
	code, _ = getJSON(t, base+"/v1/snapshot", a2.ReplicaToken, &snap)
	if code != 200 || snap.SnapshotSeq != seed.seed.HeadSeq() || snap.GenesisHash != genesis || len(snap.Nodes) != 3 {
		t.Fatalf("snapshot: %d seq %d head %d", code, snap.SnapshotSeq, seed.seed.HeadSeq())
	}
	var reg ReplicaRegistry
	getJSON(t, base+"/.well-known/iicp-replicas.json", "", &reg)
	if reg.SchemaVersion != "2" || len(reg.Replicas) != 1 || reg.Replicas[0].ReplicaID != a1.ReplicaID ||
		reg.Replicas[0].DID != req.DID || reg.Replicas[0].RegisteredAt == "" || reg.Replicas[0].TrustTier != TrustLow {
		t.Fatalf("registry %+v", reg)
	}
	return a1, a2
}

// checkReplicaDeregistration: DIR-FED-22, deregistration decommissions,
// invalidates the token, unlists the replica and emits
// REPLICA_DEREGISTERED.
func checkReplicaDeregistration(t *testing.T, base, replicaID, token string) {
	t.Helper()
	if code, b := postJSON(t, base+"/v1/replicas/deregister", token, nil); code != 200 || !strings.Contains(string(b), "decommissioned") {
		t.Fatalf("deregister: %d %s", code, b)
	}
	if code, _ := getJSON(t, base+"/v1/snapshot", token, nil); code != 401 {
		t.Fatalf("token after deregistration: %d", code)
	}
	var reg ReplicaRegistry
	getJSON(t, base+"/.well-known/iicp-replicas.json", "", &reg)
	if len(reg.Replicas) != 0 {
		t.Fatal("decommissioned replica still advertised")
	}
	var er EventsResponse
	getJSON(t, base+"/v1/events?event_types=REPLICA_DEREGISTERED", "", &er)
	if len(er.Events) != 1 || !strings.Contains(string(er.Events[0].Payload), replicaID) {
		t.Fatalf("REPLICA_DEREGISTERED not emitted: %+v", er.Events)
	}
}

// TestDIR_FED_12_EndpointGuard: without Insecure, http and private or
// loopback endpoints are refused with IICP-E043.
func TestDIR_FED_12_EndpointGuard(t *testing.T) {
	seed := newSeedEnv(t, false, func(c *SeedConfig) { c.Insecure = false })
	for _, ep := range []string{"http://example.com", "https://127.0.0.1:8443", "https://10.1.2.3", "https://[::1]"} {
		code, b := postJSON(t, seed.srv.URL+"/v1/replicas/register", "", RegisterReplicaRequest{DID: "did:web:example.com", Endpoint: ep})
		if code != 422 || errCode(b) != "IICP-E043" {
			t.Errorf("%s: %d %s, want 422 IICP-E043", ep, code, b)
		}
	}
}

// TestDIR_FED_SnapshotRequired_E045: a since_seq inside the pruned range
// answers 422 IICP-E045; the head survives pruning.
func TestDIR_FED_SnapshotRequired_E045(t *testing.T) {
	clock := newTestClock(time.Unix(1_800_000_000, 0))
	seed := newSeedEnv(t, false, func(c *SeedConfig) { c.Now = clock.Now })
	for i := range 3 {
		seed.register(t, nodeID(i))
	}
	clock.Add(2 * time.Hour)
	if n, err := seed.seed.Prune(context.Background()); err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2 (head kept)", n, err)
	}
	code, b := getJSON(t, seed.srv.URL+"/v1/events?since_seq=0", "", nil)
	if code != 422 || errCode(b) != "IICP-E045" {
		t.Fatalf("pruned range: %d %s", code, b)
	}
	var er EventsResponse
	if code, _ := getJSON(t, seed.srv.URL+"/v1/events?since_seq=2", "", &er); code != 200 || len(er.Events) != 1 {
		t.Fatalf("retained range: %d %+v", code, er)
	}
}

// TestDIR_FED_18_WriteGate and DIR-FED-08: writes are redirected to the
// seed with path and query; a replica without a usable seed URL refuses
// with 503 IICP-E047; a replica too far behind answers 503 + Retry-After.
func TestDIR_FED_18_WriteGate(t *testing.T) {
	seed := newSeedEnv(t, false)
	clock := newTestClock(time.Now())
	r := newReplicaEnv(t, seed, t.TempDir(), false, func(c *ReplicaDirectoryConfig) { c.Replica.Now = clock.Now })
	waitFor(t, 5*time.Second, "bootstrap", func() bool { return r.r.ready.Load() })
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Post(r.url+"/v1/register?x=1", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 307 || resp.Header.Get("Location") != seed.srv.URL+"/v1/register?x=1" || resp.Header.Get("X-IICP-Replica-Redirect") != "true" {
		t.Fatalf("write gate: %d %v", resp.StatusCode, resp.Header)
	}
	// DIR-FED-08. The seed goes away, so nothing can confirm the head any
	// more; the clock moves on each try, so an answer that was in flight
	// when the seed stopped (confirmed at the moved clock) delays the 503 by
	// one try only. The replica keeps serving HTTP throughout.
	seed.stop()
	waitFor(t, 5*time.Second, "lagging replica answers 503 + Retry-After", func() bool {
		clock.Add(6 * time.Minute)
		resp, err := http.Get(r.url + "/v1/discover?intent=" + url.QueryEscape(testIntent))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 503 && resp.Header.Get("Retry-After") != ""
	})

	// A library user who builds a replica without a usable seed URL
	// (NewReplicaDirectory refuses to) still cannot accept writes.
	bad, err := NewReplica(context.Background(), ReplicaConfig{SeedURL: "http://seed.example", DBPath: filepath.Join(t.TempDir(), "b.db"), Key: newKey(t), DID: "did:web:x", Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	rec := httptest.NewRecorder()
	bad.Handler(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/register", strings.NewReader("{}")))
	if rec.Code != 503 || errCode(rec.Body.Bytes()) != "IICP-E047" {
		t.Fatalf("misconfigured replica: %d %s", rec.Code, rec.Body)
	}
}

// TestDIR_FED_20_ResponseSignature: tampering with body, path, query or seq
// breaks the replica signature; query order does not.
func TestDIR_FED_20_ResponseSignature(t *testing.T) {
	k := newKey(t)
	pub := k.Public().(ed25519.PublicKey)
	body := []byte(`{"nodes":[],"count":0}`)
	sig := SignResponse(k, "GET", "/v1/discover", "intent=a&region=eu", 42, body)
	if err := VerifyResponse(pub, "get", "/v1/discover", "region=eu&intent=a", "42", sig, body); err != nil {
		t.Fatalf("reordered query must verify: %v", err)
	}
	for name, f := range map[string]func() error{
		"body": func() error {
			return VerifyResponse(pub, "GET", "/v1/discover", "intent=a&region=eu", "42", sig, []byte(`{}`))
		},
		"path": func() error {
			return VerifyResponse(pub, "GET", "/v1/bootstrap", "intent=a&region=eu", "42", sig, body)
		},
		"query": func() error { return VerifyResponse(pub, "GET", "/v1/discover", "intent=b&region=eu", "42", sig, body) },
		"seq":   func() error { return VerifyResponse(pub, "GET", "/v1/discover", "intent=a&region=eu", "41", sig, body) },
		"key": func() error {
			return VerifyResponse(newKey(t).Public().(ed25519.PublicKey), "GET", "/v1/discover", "intent=a&region=eu", "42", sig, body)
		},
		"hex": func() error {
			return VerifyResponse(pub, "GET", "/v1/discover", "intent=a&region=eu", "42", "zz", body)
		},
	} {
		if err := f(); !errors.Is(err, ErrReplicaSignature) {
			t.Errorf("%s tampered: %v", name, err)
		}
	}
}
