package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/mesh"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/node/backend"
	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/route/openai"
	"github.com/meshnode/meshnode/wire"
)

// Scenario "stream" (issue 15): time to first token (TTFT) and tokens per
// second of a streamed chat through the OpenAI-compatible gateway → libp2p
// task stream → serving node → its backend, against the same backend
// called directly with the same streaming request, interleaved in the same
// rounds. The backend generates one token per -stream-interval.

// StreamRow is one path at one concurrency.
type StreamRow struct {
	Path         string  `json:"path"`
	Concurrency  int     `json:"concurrency"`
	Requests     int64   `json:"requests"`
	Failed       int64   `json:"failed"`
	TTFTp50ms    float64 `json:"ttft_p50_ms"`
	TTFTp99ms    float64 `json:"ttft_p99_ms"`
	TokensPerSec float64 `json:"tokens_per_s"`
	// AddedTTFTp50ms and Throughput compare with the direct row.
	AddedTTFTp50ms float64 `json:"added_ttft_p50_ms,omitempty"`
	Throughput     float64 `json:"throughput_ratio,omitempty"`
	FirstError     string  `json:"first_error,omitempty"`
}

const streamModel = "stream-model"

// streamStack is the gateway of a consumer node whose router reaches a
// serving node over the mesh, and the serving node's backend.
type streamStack struct {
	llm     *testutil.SlowLLM
	backend string // backend base URL (…/v1)
	gateway string // gateway base URL (…/v1)
	client  *http.Client
	stops   []func() error
}

func (s *streamStack) close() error {
	var err error
	for _, f := range slices.Backward(s.stops) {
		err = errors.Join(err, f())
	}
	return err
}

// newStreamStack builds the two nodes; tokens and interval shape the
// backend's generation.
func newStreamStack(ctx context.Context, tokens int, interval time.Duration, maxConc int) (*streamStack, error) {
	s := &streamStack{llm: testutil.NewSlowLLM(streamModel, tokens, interval), client: &http.Client{Transport: nodeTransport()}}
	be := httptest.NewServer(s.llm.Handler())
	s.stops = append(s.stops, func() error { be.Close(); return nil })
	s.backend = be.URL + "/v1"
	// One key for the serving node's node_id and its peer ID (a peer's
	// node_id must derive from its key).
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return s, err
	}
	nodeID := wire.NodeIDFromKey(key.Public().(ed25519.PublicKey))
	eng, caps, err := streamEngine(be.URL, nodeID, maxConc)
	if err != nil {
		return s, err
	}
	server, err := startMesh(ctx, "quic", mesh.Config{NodeID: nodeID, Capabilities: caps, MaxConcurrent: maxConc}, eng, key)
	if err != nil {
		return s, fmt.Errorf("serving mesh node: %w", err)
	}
	s.stops = append(s.stops, server.stop)
	consumer, err := startMesh(ctx, "quic", mesh.Config{}, nil, nil)
	if err != nil {
		return s, fmt.Errorf("consumer mesh node: %w", err)
	}
	s.stops = append(s.stops, consumer.stop)
	consumer.h.Peerstore().AddAddrs(server.h.ID(), server.h.Addrs(), time.Hour)
	pinned := pinnedFinder{t: route.Target{Path: route.PathMesh, NodeID: nodeID, PeerID: server.h.ID().String(),
		Peer: mesh.PeerInfo{PeerID: server.h.ID()}}}
	r, err := route.New([]route.Finder{pinned}, route.WithTransport(route.PathMesh, route.MeshTransport{M: consumer.m}), route.WithAttempts(1))
	if err != nil {
		return s, err
	}
	gw, err := openai.New(r, func(context.Context) []route.Model { return nil }, openai.WithAddr("127.0.0.1:0"))
	if err != nil {
		return s, err
	}
	hs := httptest.NewServer(gw.Handler())
	s.stops = append(s.stops, func() error { hs.Close(); return nil })
	s.gateway = hs.URL + "/v1"
	return s, nil
}

// pinnedFinder offers the serving peer (the benchmark measures the path,
// not peer discovery).
type pinnedFinder struct{ t route.Target }

func (f pinnedFinder) Find(context.Context, route.Query) ([]route.Target, error) {
	return []route.Target{f.t}, nil
}

func streamEngine(backendURL, nodeID string, maxConc int) (*node.Engine, []wire.Capability, error) {
	be, err := backend.NewOpenAI(backendURL)
	if err != nil {
		return nil, nil, err
	}
	rt, err := backend.NewRouter(backend.Route{Intent: wire.IntentChat, Mode: backend.ModeChat, Backend: be, Models: []string{streamModel}})
	if err != nil {
		return nil, nil, err
	}
	eng, err := node.New(node.Config{NodeID: nodeID, MaxConcurrent: maxConc}, rt,
		node.WithOpenMode(), node.WithRegisterer(prometheus.NewRegistry()))
	return eng, rt.Capabilities(), err
}

// streamTally accumulates one path's requests.
type streamTally struct {
	mu       sync.Mutex
	ttft     []time.Duration
	tokens   int64
	ok       int64
	failed   int64
	elapsed  time.Duration
	firstErr error
}

const streamBody = `{"model":"` + streamModel + `","stream":true,"messages":[{"role":"user","content":"stream a benchmark answer"}]}`

// streamOnce posts one streamed chat to base and reads it to [DONE]:
// the time to the first content token and the content tokens seen.
func streamOnce(ctx context.Context, hc *http.Client, base string) (time.Duration, int64, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", strings.NewReader(streamBody))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var ttft time.Duration
	var n int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Equal(line, []byte("data: [DONE]")) {
			if n == 0 {
				return 0, 0, errors.New("no token")
			}
			return ttft, n, nil
		}
		if bytes.HasPrefix(line, []byte("data: ")) && bytes.Contains(line, []byte(`"content":"tok`)) {
			if n == 0 {
				ttft = time.Since(start)
			}
			n++
		}
	}
	return 0, 0, fmt.Errorf("stream ended before [DONE]: %v", sc.Err())
}

// streamWindow runs conc workers against base for d, or until maxReqs
// requests were started (0: no count bound).
func streamWindow(ctx context.Context, hc *http.Client, base string, conc int, d time.Duration, maxReqs int64, t *streamTally) {
	deadline := time.Now().Add(d)
	var started sync.Mutex
	var count int64
	next := func() bool {
		started.Lock()
		defer started.Unlock()
		if ctx.Err() != nil || time.Now().After(deadline) || (maxReqs > 0 && count >= maxReqs) {
			return false
		}
		count++
		return true
	}
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next() {
				ttft, n, err := streamOnce(ctx, hc, base)
				t.mu.Lock()
				if err != nil {
					t.failed++
					if t.firstErr == nil {
						t.firstErr = err
					}
				} else {
					t.ok++
					t.tokens += n
					t.ttft = append(t.ttft, ttft)
				}
				t.mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.elapsed += time.Since(start)
}

func (t *streamTally) row(path string, conc int) StreamRow {
	r := StreamRow{Path: path, Concurrency: conc, Requests: t.ok + t.failed, Failed: t.failed}
	if t.firstErr != nil {
		r.FirstError = t.firstErr.Error()
	}
	if len(t.ttft) > 0 {
		slices.Sort(t.ttft)
		r.TTFTp50ms = float64(percentile(t.ttft, 50).Microseconds()) / 1000
		r.TTFTp99ms = float64(percentile(t.ttft, 99).Microseconds()) / 1000
	}
	if t.elapsed > 0 {
		r.TokensPerSec = float64(t.tokens) / t.elapsed.Seconds()
	}
	return r
}

// compareStream measures direct and gateway at conc, interleaved in rounds.
func (s *streamStack) compareStream(ctx context.Context, conc int, d time.Duration, rounds int) []StreamRow {
	var direct, gateway streamTally
	for range rounds {
		streamWindow(ctx, s.client, s.backend, conc, d/time.Duration(rounds), 0, &direct)
		streamWindow(ctx, s.client, s.gateway, conc, d/time.Duration(rounds), 0, &gateway)
	}
	base, via := direct.row("direct", conc), gateway.row("gateway-mesh", conc)
	via.AddedTTFTp50ms = via.TTFTp50ms - base.TTFTp50ms
	if base.TokensPerSec > 0 {
		via.Throughput = via.TokensPerSec / base.TokensPerSec
	}
	return []StreamRow{base, via}
}

// runStream is scenario "stream".
func runStream(ctx context.Context, env *benchEnv, rep *Report) error {
	o := env.opts
	st, err := newStreamStack(ctx, o.streamTokens, o.streamInterval, 4*slices.Max(o.streamConcurrency))
	defer func() { err = errors.Join(err, st.close()) }()
	if err != nil {
		return err
	}
	var failed int64
	for _, c := range o.streamConcurrency {
		// A streamed request lasts tokens × interval: the window must
		// hold a few of them.
		d := max(o.duration, 4*time.Duration(o.streamTokens)*o.streamInterval*time.Duration(o.rounds))
		rows := st.compareStream(ctx, c, d, o.rounds)
		rep.Stream = append(rep.Stream, rows...)
		for _, r := range rows {
			failed += r.Failed
		}
	}
	rep.Checks = append(rep.Checks, Check{Name: "stream: every streamed request completed", OK: failed == 0,
		Info: fmt.Sprintf("%d failed", failed)})
	return err
}

// writeStream prints the stream rows.
func (r *Report) writeStream(w io.Writer) error {
	fmt.Fprintln(w, "\nstream: streamed chat, time to first token and tokens/s (gateway → mesh → serving node vs backend direct)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tconc\treq\tfail\tTTFT p50 ms\tTTFT p99 ms\ttokens/s\t+TTFT p50 ms\ttokens/s×\t")
	for _, row := range r.Stream {
		added := "\t\t"
		if row.Path != "direct" {
			added = fmt.Sprintf("%+.2f\t%.3f\t", row.AddedTTFTp50ms, row.Throughput)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.1f\t%s\n", row.Path, row.Concurrency, row.Requests, row.Failed,
			row.TTFTp50ms, row.TTFTp99ms, row.TokensPerSec, added)
	}
	return tw.Flush()
}
