package dirclient

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// readDirSrv is an in-test directory for read routing: /iicp/health (with
// an optional delay), /v1/discover answering one node named after the
// server, and, for a replica, its DID document and DIR-FED-20 signatures.
type readDirSrv struct {
	name     string
	srv      *httptest.Server
	delay    time.Duration
	key      ed25519.PrivateKey // replica signing key; nil for the seed
	did      string
	tamper   atomic.Bool // answer a body other than the one signed
	unsigned atomic.Bool
	reads    atomic.Int64

	mu       sync.Mutex
	replicas []map[string]string // the seed's registry entries
}

func newReadDirSrv(t *testing.T, name string, replica bool) *readDirSrv {
	t.Helper()
	d := &readDirSrv{name: name}
	if replica {
		_, d.key, _ = ed25519.GenerateKey(rand.Reader)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /iicp/health", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(d.delay)
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/discover", d.discover)
	mux.HandleFunc("GET /.well-known/did.json", func(w http.ResponseWriter, _ *http.Request) {
		if d.key == nil {
			http.NotFound(w, nil)
			return
		}
		x := base64.RawURLEncoding.EncodeToString(d.key.Public().(ed25519.PublicKey))
		writeJSON(w, 200, map[string]any{"id": d.did, "verificationMethod": []map[string]any{
			{"id": d.did + "#key-1", "type": "JsonWebKey2020", "publicKeyJwk": map[string]string{"kty": "OKP", "crv": "Ed25519", "x": x}}}})
	})
	mux.HandleFunc("GET /.well-known/iicp-replicas.json", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		writeJSON(w, 200, map[string]any{"schema_version": "2", "replicas": d.replicas})
	})
	d.srv = httptest.NewServer(mux)
	u, _ := url.Parse(d.srv.URL)
	d.did = "did:web:" + strings.ReplaceAll(u.Host, ":", "%3A")
	t.Cleanup(d.srv.Close)
	return d
}

func (d *readDirSrv) discover(w http.ResponseWriter, r *http.Request) {
	d.reads.Add(1)
	body, _ := json.Marshal(wire.NodeList{Nodes: []wire.NodeSummary{{NodeID: d.name, Available: true}}, Count: 1})
	if d.key != nil && !d.unsigned.Load() {
		const seq = 7
		bh := sha256.Sum256(body)
		q, _ := url.ParseQuery(r.URL.RawQuery)
		dg := sha256.Sum256([]byte("GET:" + r.URL.Path + ":" + q.Encode() + ":" + strconv.Itoa(seq) + ":" + hex.EncodeToString(bh[:])))
		w.Header().Set(headerSnapshotSeq, strconv.Itoa(seq))
		w.Header().Set(headerReplicaSig, hex.EncodeToString(ed25519.Sign(d.key, dg[:])))
	}
	if d.tamper.Load() {
		body, _ = json.Marshal(wire.NodeList{Nodes: []wire.NodeSummary{{NodeID: "attacker", Available: true}}, Count: 1})
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// list makes the seed name rep in its registry.
func (d *readDirSrv) list(rep *readDirSrv) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.replicas = append(d.replicas, map[string]string{"replica_id": "rep-" + rep.name, "did": rep.did,
		"endpoint": rep.srv.URL, "trust_tier": "low"})
}

func newTestReadSet(t *testing.T, seed *readDirSrv, wellKnown bool, replicas ...string) (*ReadSet, *testutil.SyncBuffer) {
	t.Helper()
	c, err := New(seed.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	rs, err := NewReadSet(ReadSetConfig{Seed: c, Replicas: replicas, WellKnown: wellKnown, ProbeTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return rs, &logs
}

func discoverFrom(t *testing.T, rs *ReadSet) string {
	t.Helper()
	nl, err := rs.Discover(context.Background(), Query{Intent: wire.IntentChat})
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	return nl.Nodes[0].NodeID
}

func serving(rs *ReadSet) string {
	for _, s := range rs.Status() {
		if s.Serving {
			return s.URL
		}
	}
	return ""
}

// TestReadSetNearestHealthyReplica: reads go to the healthy replica with
// the lowest measured RTT, never the seed while a replica is healthy.
func TestReadSetNearestHealthyReplica(t *testing.T) {
	seed := newReadDirSrv(t, "seed", false)
	far, near := newReadDirSrv(t, "far", false), newReadDirSrv(t, "near", false)
	far.delay = 60 * time.Millisecond
	rs, _ := newTestReadSet(t, seed, false, far.srv.URL, near.srv.URL)
	rs.probeAll(context.Background())
	if got := discoverFrom(t, rs); got != "near" {
		t.Fatalf("read went to %s, want the nearest replica", got)
	}
	if serving(rs) != near.srv.URL || seed.reads.Load() != 0 {
		t.Fatalf("serving %s, seed reads %d", serving(rs), seed.reads.Load())
	}
	// The near replica dies: the next read fails over to the far one and
	// the dead one is marked down without waiting for a probe.
	near.srv.Close()
	if got := discoverFrom(t, rs); got != "far" {
		t.Fatalf("after the near replica died, read went to %s", got)
	}
	if serving(rs) != far.srv.URL {
		t.Fatalf("serving %s", serving(rs))
	}
}

// TestReadSetRidesOutSeedDown: with the seed down, reads keep working on
// the replica; with every replica down, reads go to the seed.
func TestReadSetRidesOutSeedDown(t *testing.T) {
	seed, rep := newReadDirSrv(t, "seed", false), newReadDirSrv(t, "rep", false)
	rs, _ := newTestReadSet(t, seed, false, rep.srv.URL)
	rs.probeAll(context.Background())
	seed.srv.Close()
	rs.probeAll(context.Background())
	for range 3 {
		if got := discoverFrom(t, rs); got != "rep" {
			t.Fatalf("read went to %s", got)
		}
	}
	for _, s := range rs.Status() {
		if s.Role == RoleSeed && (s.Healthy || !s.Probed || s.LastError == "") {
			t.Fatalf("seed status %+v, want probed down with an error", s)
		}
	}

	seed2, rep2 := newReadDirSrv(t, "seed2", false), newReadDirSrv(t, "rep2", false)
	rs2, _ := newTestReadSet(t, seed2, false, rep2.srv.URL)
	rep2.srv.Close()
	rs2.probeAll(context.Background())
	if got := discoverFrom(t, rs2); got != "seed2" {
		t.Fatalf("read went to %s, want the seed", got)
	}
}

// TestReadSetLearnsReplicasFromWellKnown: a replica the seed lists in
// /.well-known/iicp-replicas.json is found, its key taken from its DID
// document, and its signed answers used (DIR-FED-20).
func TestReadSetLearnsReplicasFromWellKnown(t *testing.T) {
	seed, rep := newReadDirSrv(t, "seed", false), newReadDirSrv(t, "rep", true)
	seed.list(rep)
	rs, logs := newTestReadSet(t, seed, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 5*time.Second, "replica learned and probed", func() bool { return serving(rs) == rep.srv.URL })
	if got := discoverFrom(t, rs); got != "rep" {
		t.Fatalf("read went to %s", got)
	}
	st := rs.Status()
	if len(st) != 2 || st[1].Source != SourceWellKnown || !st[1].Signed || st[1].Reads != 1 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "replica learned") {
		t.Fatalf("no log line for the learned replica:\n%s", logs.String())
	}
}

// TestReadSetRejectsForgedReplicaAnswer (DIR-FED-20, IICP-SEC-REPLICA-01):
// an attacker between node and replica (or a replica gone bad) that
// changes an answer or strips the signature gets none of its nodes used:
// the read fails over to the seed and the replica is marked down.
func TestReadSetRejectsForgedReplicaAnswer(t *testing.T) {
	for _, mode := range []string{"tampered", "unsigned"} {
		t.Run(mode, func(t *testing.T) {
			seed, rep := newReadDirSrv(t, "seed", false), newReadDirSrv(t, "rep", true)
			seed.list(rep)
			rs, logs := newTestReadSet(t, seed, true)
			rs.refreshRegistry(context.Background())
			rs.probeAll(context.Background())
			if serving(rs) != rep.srv.URL {
				t.Fatalf("serving %s before the attack", serving(rs))
			}
			if mode == "tampered" {
				rep.tamper.Store(true)
			} else {
				rep.unsigned.Store(true)
			}
			if got := discoverFrom(t, rs); got != "seed" {
				t.Fatalf("read answered by %s, want the seed after a forged replica answer", got)
			}
			if rep.reads.Load() != 1 || !strings.Contains(logs.String(), "IICP-SEC-REPLICA-01") {
				t.Fatalf("replica reads %d, logs:\n%s", rep.reads.Load(), logs.String())
			}
			if serving(rs) != seed.srv.URL {
				t.Fatalf("forged replica still serving reads")
			}
		})
	}
}

// TestReadSetRefusesForeignDIDKey: a replica whose DID document names
// another identity than the seed's registry is not used at all.
func TestReadSetRefusesForeignDIDKey(t *testing.T) {
	seed, rep := newReadDirSrv(t, "seed", false), newReadDirSrv(t, "rep", true)
	rep.did = "did:web:someone-else.example"
	seed.list(rep)
	rep.did = "did:web:attacker.example" // the document now names another DID
	rs, _ := newTestReadSet(t, seed, true)
	rs.refreshRegistry(context.Background())
	if n := len(rs.Status()); n != 1 {
		t.Fatalf("%d directories, want only the seed", n)
	}
}

// TestReadSetQueryErrorIsFinal: a 4xx for the query itself is not retried
// on other directories.
func TestReadSetQueryErrorIsFinal(t *testing.T) {
	seed := newReadDirSrv(t, "seed", false)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/iicp/health" {
			writeJSON(w, 200, map[string]string{"status": "ok"})
			return
		}
		writeErr(w, 422, wire.CodeValidationError, "intent unknown")
	}))
	defer bad.Close()
	rs, _ := newTestReadSet(t, seed, false, bad.URL)
	rs.probeAll(context.Background())
	_, err := rs.Discover(context.Background(), Query{Intent: "x"})
	if !errors.Is(err, ErrRejected) || seed.reads.Load() != 0 {
		t.Fatalf("err %v, seed reads %d", err, seed.reads.Load())
	}
}

func TestParseReplicasValidates(t *testing.T) {
	doc := `{"replicas":[
		{"did":"did:web:a.example","endpoint":"https://a.example"},
		{"did":"did:web:b.example","endpoint":"http://b.example"},
		{"did":"notadid","endpoint":"https://c.example"},
		{"did":"did:web:d.example","endpoint":"https://user:pw@d.example"},
		{"did":"did:web:e.example","endpoint":"/relative"}]}`
	got, err := parseReplicas([]byte(doc), false)
	if err != nil || len(got) != 1 || got[0].Endpoint != "https://a.example" {
		t.Fatalf("https seed: %+v %v", got, err)
	}
	if got, _ := parseReplicas([]byte(doc), true); len(got) != 2 {
		t.Fatalf("plaintext dev seed: %+v", got)
	}
	if _, err := parseReplicas([]byte(`[`), false); err == nil {
		t.Fatal("malformed registry accepted")
	}
}

// TestReadSetConfiguredReplicaListedBySeed: a configured replica the seed
// also lists is held to the signature rule from then on, and reads running
// while the registry is applied are race-free (go test -race).
func TestReadSetConfiguredReplicaListedBySeed(t *testing.T) {
	seed, rep := newReadDirSrv(t, "seed", false), newReadDirSrv(t, "rep", true)
	seed.list(rep)
	rs, _ := newTestReadSet(t, seed, true, rep.srv.URL)
	rs.probeAll(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			_, _ = rs.Discover(context.Background(), Query{Intent: wire.IntentChat})
		}
	})
	rs.refreshRegistry(context.Background())
	wg.Wait()
	st := rs.Status()
	if len(st) != 2 || st[1].Source != SourceConfigured || !st[1].Signed {
		t.Fatalf("status %+v", st)
	}
	rep.unsigned.Store(true)
	if got := discoverFrom(t, rs); got != "seed" {
		t.Fatalf("unsigned answer of a listed configured replica used (read answered by %s)", got)
	}
}
