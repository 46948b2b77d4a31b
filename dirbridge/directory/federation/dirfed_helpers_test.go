package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/directory"
)

// healthSrv is a node's real /iicp/health endpoint (dev mode probes it
// over plain HTTP on loopback).
func healthSrv(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/iicp/health" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func dirConfig(t testing.TB, stateDir string, staleAfter time.Duration) directory.Config {
	// 200 registrations/s from loopback in the lag benchmark: lift the
	// per-IP register limit (DIR-RL-01 is the directory's own test).
	return directory.Config{Listen: "127.0.0.1:0", StateDir: stateDir, Dev: true, BcryptCost: 4,
		StaleAfter: staleAfter, Version: "test", RegisterRateLimit: 1 << 20}
}

// seedDirEnv is a real directory in seed mode on loopback.
type seedDirEnv struct {
	sd     *SeedDirectory
	url    string
	cancel context.CancelFunc
	done   chan error
	mu     sync.Mutex
	reqs   []string
	tamper atomic.Value // func([]byte) []byte over /v1/events bodies
	// oldSeed drops X-IICP-Wait from /v1/events: a seed without long-poll.
	oldSeed atomic.Bool
	once    sync.Once
}

type seedDirOpts struct {
	gossip     bool
	staleAfter time.Duration
	stateDir   string
}

func newSeedDir(t testing.TB, o seedDirOpts) *seedDirEnv {
	t.Helper()
	env := &seedDirEnv{done: make(chan error, 1)}
	if o.stateDir == "" {
		o.stateDir = t.TempDir()
	}
	cfg := SeedDirectoryConfig{
		Directory: dirConfig(t, o.stateDir, o.staleAfter),
		Options:   []directory.Option{directory.WithLogger(quietLog), directory.WithHandlerWrap(env.observe)},
		Seed: SeedConfig{Key: newKey(t), Insecure: true, Logger: quietLog, RegisterPerHour: 100,
			SnapshotsPerHour: 1000, EventsPerMinute: 100000, LivenessPerMinute: 100000, LivenessInterval: 100 * time.Millisecond},
	}
	if o.gossip {
		cfg.Gossip = &GossipConfig{}
	}
	sd, err := NewSeedDirectory(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.Listen(context.Background()); err != nil {
		_ = sd.Close()
		t.Fatal(err)
	}
	env.sd, env.url = sd, sd.URL()
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() { env.done <- sd.Serve(ctx) }()
	t.Cleanup(env.stop)
	return env
}

// observe records requests and tampers with event pages when asked.
func (e *seedDirEnv) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, r.URL.RequestURI())
		e.mu.Unlock()
		if r.URL.Path == "/v1/events" {
			// Recorded, so a tamper set while a long-poll is held still
			// applies to its answer.
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				if k != http.CanonicalHeaderKey(HeaderWait) || !e.oldSeed.Load() {
					w.Header()[k] = v
				}
			}
			w.Header().Del("Content-Length") // a tampered body has another length
			w.WriteHeader(rec.Code)
			b := rec.Body.Bytes()
			if f, ok := e.tamper.Load().(func([]byte) []byte); ok && f != nil {
				b = f(b)
			}
			_, _ = w.Write(b)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *seedDirEnv) stop() {
	e.once.Do(func() {
		e.cancel()
		if err := <-e.done; err != nil {
			panic("seed directory Serve: " + err.Error())
		}
	})
}

func (e *seedDirEnv) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.reqs...)
}

func (e *seedDirEnv) resetRequests() { e.mu.Lock(); e.reqs = nil; e.mu.Unlock() }

// replicaDirEnv is a real directory in replica mode on loopback.
type replicaDirEnv struct {
	rd     *ReplicaDirectory
	url    string
	key    ed25519.PrivateKey
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

type replicaDirOpts struct {
	gossip      bool
	stateDir    string
	key         ed25519.PrivateKey
	poll        time.Duration
	staleAfter  time.Duration
	now         func() time.Time
	gossipPeers []string
	options     []directory.Option
	live        time.Duration // replica LivenessInterval; 0: 100 ms
	log         *slog.Logger  // replica logger; nil: quiet
}

func newReplicaDir(t testing.TB, seed *seedDirEnv, o replicaDirOpts) *replicaDirEnv {
	t.Helper()
	if o.gossip {
		o.gossipPeers = seed.sd.GossipAddrs()
	}
	return newReplicaDirAt(t, seed.url, o)
}

func newReplicaDirAt(t testing.TB, seedURL string, o replicaDirOpts) *replicaDirEnv {
	t.Helper()
	if o.stateDir == "" {
		o.stateDir = t.TempDir()
	}
	if o.key == nil {
		o.key = newKey(t)
	}
	if o.poll == 0 {
		o.poll = time.Hour
	}
	if o.live == 0 {
		o.live = 100 * time.Millisecond
	}
	if o.log == nil {
		o.log = quietLog
	}
	cfg := ReplicaDirectoryConfig{
		Directory: dirConfig(t, o.stateDir, o.staleAfter),
		Options:   append([]directory.Option{directory.WithLogger(quietLog)}, o.options...),
		Replica: ReplicaConfig{SeedURL: seedURL, Key: o.key, Insecure: true, Logger: o.log, PollInterval: o.poll,
			RetryInterval: 20 * time.Millisecond, LivenessInterval: o.live, Now: o.now},
	}
	if o.gossip {
		cfg.Gossip = &GossipConfig{Peers: o.gossipPeers}
	}
	rd, err := NewReplicaDirectory(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Listen(context.Background()); err != nil {
		_ = rd.Close()
		t.Fatal(err)
	}
	env := &replicaDirEnv{rd: rd, url: rd.URL(), key: o.key, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() { env.done <- rd.Serve(ctx) }()
	t.Cleanup(env.stop)
	return env
}

func (e *replicaDirEnv) stop() {
	e.once.Do(func() {
		e.cancel()
		if err := <-e.done; err != nil {
			panic("replica directory Serve: " + err.Error())
		}
	})
}

// discover runs the real discover route at a replica and checks the
// DIR-FED-20 signature against the replica's key. It returns the status
// and the nodes by node_id.
func (e *replicaDirEnv) discover(t testing.TB) (int, map[string]map[string]any) {
	t.Helper()
	return discoverAt(t, e.url, e.key.Public().(ed25519.PublicKey))
}

func discoverAt(t testing.TB, base string, replicaPub ed25519.PublicKey) (int, map[string]map[string]any) {
	t.Helper()
	q := "intent=" + url.QueryEscape(testIntent)
	resp, err := http.Get(base + "/v1/discover?" + q)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if replicaPub != nil {
		if resp.Header.Get(HeaderReplicaDID) == "" {
			t.Fatal("replica discover lacks X-IICP-Replica-DID")
		}
		if err := VerifyResponse(replicaPub, http.MethodGet, "/v1/discover", q, resp.Header.Get(HeaderSnapshotSeq),
			resp.Header.Get(HeaderReplicaSig), body); err != nil {
			t.Fatalf("replica response signature: %v", err)
		}
	}
	var nl struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(body, &nl); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, n := range nl.Nodes {
		id, _ := n["node_id"].(string)
		out[id] = n
	}
	return resp.StatusCode, out
}

func (e *replicaDirEnv) serves(t testing.TB, id string) bool {
	code, nodes := e.discover(t)
	return code == http.StatusOK && nodes[id] != nil
}

// registerAt POSTs a real REGISTER to base with client and returns the
// node token.
func registerAt(t testing.TB, client *http.Client, base, nodeID, endpoint string) string {
	t.Helper()
	tok, err := tryRegister(client, base, nodeID, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tryRegister is registerAt for goroutines (no t.Fatal off the test's own).
func tryRegister(client *http.Client, base, nodeID, endpoint string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"message_type": "REGISTER", "node_id": nodeID, "endpoint": endpoint, "region": "eu-central",
		"capabilities": []map[string]any{{"intent": testIntent, "models": []string{"m1"}, "max_tokens": 4096}},
		"limits":       map[string]any{"max_concurrent": 4}, "sdk_language": "go", "implementation_name": "meshnode-test",
	})
	resp, err := client.Post(base+"/v1/register", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("register: %d %s", resp.StatusCode, raw)
	}
	var ack struct {
		NodeToken string `json:"node_token"`
	}
	if err := json.Unmarshal(raw, &ack); err != nil || ack.NodeToken == "" {
		return "", fmt.Errorf("register ack: %s", raw)
	}
	return ack.NodeToken, nil
}

// call sends method path with a bearer token and returns the status.
func call(t testing.TB, client *http.Client, method, u, token string, body any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func heartbeat(t testing.TB, base, nodeID, token string, load float64) {
	t.Helper()
	if code := call(t, http.DefaultClient, http.MethodPost, base+"/v1/heartbeat", token,
		map[string]any{"node_id": nodeID, "load": load}); code != http.StatusOK {
		t.Fatalf("heartbeat: %d", code)
	}
}

func getBody(t testing.TB, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitTopic(t testing.TB, s *seedDirEnv, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, "replicas subscribed to the seed topic", func() bool {
		return len(s.sd.gossip.PubSub().ListPeers(EventTopic(s.sd.Seed().DID()))) >= n
	})
}

func containsAny(b []byte, subs ...string) bool {
	for _, s := range subs {
		if s != "" && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func tempDB(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }

// offsetClock is the real clock plus a settable offset.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Add(d time.Duration) { c.off.Add(int64(d)) }
