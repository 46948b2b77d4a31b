package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/wire"
)

// Benchmark shape (issue 4 §8): 10,000 nodes over 20 intents, loopback HTTP.
const (
	benchNodes   = 10_000
	benchIntents = 20
	benchWorkers = 16
)

type benchFixture struct {
	s       *Server
	base    string
	client  *http.Client
	ids     []string
	toks    []string
	intents []string
	cancel  context.CancelFunc
	done    chan error
	dir     string
}

var (
	benchOnce sync.Once
	benchFix  *benchFixture
	benchErr  error
)

// getBenchFix builds the fixture once per process: the store is populated
// directly (tokens issued and stored exactly as REGISTER does, minus the
// 10,000 liveness probes).
func getBenchFix(b *testing.B) *benchFixture {
	b.Helper()
	benchOnce.Do(func() { benchFix, benchErr = buildBenchFixture() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFix
}

func buildBenchFixture() (*benchFixture, error) {
	dir, err := os.MkdirTemp("", "dirbench")
	if err != nil {
		return nil, err
	}
	s, err := New(Config{Listen: "127.0.0.1:0", StateDir: dir, Dev: true, BcryptCost: 4},
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, err
	}
	if err := s.Listen(); err != nil {
		return nil, err
	}
	f := &benchFixture{s: s, dir: dir, done: make(chan error, 1), ids: make([]string, benchNodes), toks: make([]string, benchNodes)}
	for i := range benchIntents {
		f.intents = append(f.intents, fmt.Sprintf("urn:iicp:intent:bench:task%02d:v1", i))
	}
	now := time.Now()
	for i := range benchNodes {
		tok, cred, err := s.tokens.issue()
		if err != nil {
			return nil, err
		}
		id := newUUID()
		rec := &NodeRecord{NodeID: id, Endpoint: fmt.Sprintf("https://n%d.bench.example.net", i), Region: []string{"eu-central", "us-west", "ap-south"}[i%3],
			Capabilities: []wire.Capability{{Intent: f.intents[i%benchIntents], Models: []string{"m"}}},
			Limits:       wire.Limits{MaxConcurrent: 1 + i%16}, CIPLevel: "CIP-None", RegisteredAt: now, UpdatedAt: now}
		st := &nodeState{LastSeen: now, Available: true, Reputation: defaultReputation, Load: float64(i%10) / 10, LoadReported: true}
		if err := s.store.apply(context.Background(), ChangeEvent{Kind: ChangeRegister, NodeID: id, Record: rec, Credential: &cred, At: now}, st); err != nil {
			return nil, err
		}
		f.ids[i], f.toks[i] = id, tok
	}
	var ctx context.Context
	ctx, f.cancel = context.WithCancel(context.Background())
	go func() { f.done <- s.Serve(ctx) }()
	f.base = "http://" + s.Addr().String()
	f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers * 2, MaxConnsPerHost: benchWorkers * 2}, Timeout: 10 * time.Second}
	return f, nil
}

func (f *benchFixture) close() {
	f.cancel()
	<-f.done
	f.client.CloseIdleConnections()
	os.RemoveAll(f.dir)
}

// runLoad issues b.N requests from benchWorkers goroutines and reports
// throughput and latency percentiles.
func runLoad(b *testing.B, f *benchFixture, do func(r *rand.Rand) (*http.Request, error)) {
	var next atomic.Int64
	lat := make([][]time.Duration, benchWorkers)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.ProcessCPU()
	for w := range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for next.Add(1) <= int64(b.N) {
				req, err := do(r)
				if err != nil {
					failed.Add(1)
					continue
				}
				t0 := time.Now()
				res, err := f.client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), testutil.ProcessCPU()-cpu0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	// Process CPU per request (client and server together): stable on a
	// shared machine where req/s follows whatever else is running.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/req")
}

// BenchmarkDiscover: GET /v1/discover over 10,000 nodes in 20 intents.
func BenchmarkDiscover(b *testing.B) {
	f := getBenchFix(b)
	runLoad(b, f, func(r *rand.Rand) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, f.base+"/v1/discover?intent="+f.intents[r.IntN(benchIntents)]+"&region=eu-central", nil)
	})
}

// BenchmarkDiscoverInteractive: the query deployed SDKs send (qos=interactive
// on every discover); in this fixture every node is still in probation, so
// it exercises the probation walk with the per-network cap.
func BenchmarkDiscoverInteractive(b *testing.B) {
	f := getBenchFix(b)
	runLoad(b, f, func(r *rand.Rand) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, f.base+"/v1/discover?qos=interactive&intent="+f.intents[r.IntN(benchIntents)], nil)
	})
}

// BenchmarkHeartbeat: authenticated POST /v1/heartbeat from random nodes.
func BenchmarkHeartbeat(b *testing.B) {
	f := getBenchFix(b)
	runLoad(b, f, func(r *rand.Rand) (*http.Request, error) {
		i := r.IntN(benchNodes)
		body, _ := json.Marshal(map[string]any{"node_id": f.ids[i], "load": r.Float64(), "active_jobs": 1})
		req, err := http.NewRequest(http.MethodPost, f.base+"/v1/heartbeat", bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+f.toks[i])
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	})
}

// BenchmarkRegisterCommit: one REGISTER's durable write (record, state and
// credential in one SQLite transaction, WAL) with synchronous=FULL, the
// setting the directory runs, against NORMAL, which it ran before issue 12.
func BenchmarkRegisterCommit(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run(mode, func(b *testing.B) {
			prev := storeSynchronous
			storeSynchronous = mode
			defer func() { storeSynchronous = prev }()
			st, err := openStore(context.Background(), b.TempDir()+"/bench.db")
			if err != nil {
				b.Fatal(err)
			}
			defer st.close()
			cred := Credential{Hash: bytes.Repeat([]byte{1}, 60), Index: "idx"}
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
				rec := &NodeRecord{NodeID: id, Endpoint: "https://n.example:8443", Region: "eu-central",
					Capabilities: []wire.Capability{{Intent: "urn:iicp:intent:llm:chat:v1", Models: []string{"m"}}}}
				ev := ChangeEvent{Kind: ChangeRegister, NodeID: id, Record: rec, Credential: &cred, At: time.Now()}
				c := cred
				c.Index = id
				ev.Credential = &c
				if err := st.apply(context.Background(), ev, &nodeState{LastSeen: time.Now(), Available: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/commit")
		})
	}
}
