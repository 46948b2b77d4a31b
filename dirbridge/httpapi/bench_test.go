package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/httpapi"
	"github.com/meshnode/meshnode/internal/testutil"
)

// BenchmarkNodeOverhead measures what the node adds on top of its backend:
// latency through POST /v1/task (bridge + engine + OpenAI client + backend)
// minus latency of the same chat request sent straight to the same
// zero-delay OpenAI-compatible test backend, at concurrency 1 and 64, plus
// throughput at 64 and its ratio to direct. Every RESPONSE is checked: a
// lost or mis-attributed task (task_id mismatch) fails the benchmark.
//
// The node path needs two HTTP exchanges (caller → node, node → backend)
// where the direct path needs one, and on one shared machine both compete
// for the same cores. So the benchmark also runs a bare proxy hop: the same
// chat request through an httputil.ReverseProxy in front of the same
// backend. That hop does no IICP work at all; its throughput is the ceiling
// any bridge can reach here, and node-vs-proxy is the share of it the node
// keeps.
//
//	make bench-node   (or: go test -run '^$' -bench NodeOverhead -benchtime 4000x ./dirbridge/httpapi/)
//
// Metrics (µs = microseconds): direct-p50/p99-µs, node-p50/p99-µs,
// overhead-p50/p99-µs, direct-req/s, node-req/s, throughput-ratio (node/direct),
// proxy-p50-µs, proxy-req/s, proxy-ratio (proxy/direct), node-vs-proxy (node/proxy).
func BenchmarkNodeOverhead(b *testing.B) {
	for _, bc := range []struct {
		name  string
		conc  int
		tls   bool
		delay time.Duration
	}{
		{"plain/c=1", 1, false, 0},
		{"plain/c=32", 32, false, 0},
		{"plain/c=64", 64, false, 0},
		{"tls/c=1", 1, true, 0},
		{"tls/c=64", 64, true, 0},
		// A backend that takes 20 ms, like a small real model: shows the
		// node's cost once the backend, not the HTTP stack, is the bottleneck.
		{"plain/c=64/backend=20ms", 64, false, 20 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) { benchOverhead(b, bc.conc, bc.tls, bc.delay) })
	}
}

func benchOverhead(b *testing.B, conc int, useTLS bool, delay time.Duration) {
	opts := []httpapi.Option{httpapi.WithPlaintextDev()}
	if useTLS {
		opts = nil // startNode supplies the self-signed TLS config
	}
	h := startNode(b, harnessConfig{maxConc: 128, apiOpts: opts, infoLogs: true}) // labels hop=node and hop=backend
	h.llm.delay.Store(int64(delay))
	directOnce, proxyOnce := chatCallers(b, h.llm.URL)
	nodeOnce := taskCaller(b, h)

	// Warm connections and code paths on both sides, outside the timings.
	labelled("caller-direct", func() { warm(b, conc, directOnce) })
	labelled("caller-proxy", func() { warm(b, conc, proxyOnce) })
	b.ResetTimer()
	d, p, n := measureRounds(b, conc, directOnce, proxyOnce, nodeOnce)
	b.StopTimer()
	reportOverhead(b, d, p, n)
}

// chatCallers returns one chat request straight to the backend at llmURL
// and one through a bare reverse proxy in front of it. Every client and the
// proxy's upstream transport are tuned alike: the node's own caller client
// (clientFor) and its backend transport (startNode) keep 128 idle
// connections per host too.
func chatCallers(b *testing.B, llmURL string) (direct, proxied func(int) error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	b.Cleanup(hc.CloseIdleConnections)
	var proxy string
	labelled("proxy", func() { proxy = startProxy(b, llmURL) })
	chatBody := []byte(`{"model":"test-model","messages":[{"role":"user","content":"hello"}]}`)
	chatOnce := func(base string) error {
		resp, err := hc.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(chatBody))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !json.Valid(body) {
			return fmt.Errorf("%s: status %d err %v", base, resp.StatusCode, err)
		}
		return nil
	}
	return func(int) error { return chatOnce(llmURL) }, func(int) error { return chatOnce(proxy) }
}

// taskCaller returns the i-th of b.N prepared tasks sent to the node's
// POST /v1/task; a RESPONSE for another task_id fails it (mis-attributed).
// Its client is configured like the chat callers' (harness transport, no
// http.Client.Timeout: a client timeout costs a timer goroutine per
// request the other callers do not pay; the node itself answers every
// task by its timeout_ms), and it reads the answer the way they do, whole,
// then decodes the two fields it checks.
func taskCaller(b *testing.B, h *harness) func(int) error {
	calls := make([][]byte, b.N)
	ids := make([]string, b.N)
	for i := range calls {
		c := taskBody("hello")
		ids[i] = c["task_id"].(string)
		calls[i], _ = json.Marshal(c)
	}
	client := &http.Client{Transport: h.client.Transport}
	return func(i int) error {
		resp, err := client.Post(h.url+"/v1/task", "application/json", bytes.NewReader(calls[i]))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r struct {
			TaskID string `json:"task_id"`
			Status string `json:"status"`
		}
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			err = json.Unmarshal(body, &r)
		}
		if err != nil || resp.StatusCode != 200 || r.Status != "success" {
			return fmt.Errorf("node: status %d %q err %v", resp.StatusCode, r.Status, err)
		}
		if r.TaskID != ids[i] {
			return fmt.Errorf("task %d answered with task_id %s: mis-attributed", i, r.TaskID)
		}
		return nil
	}
}

// pathStats accumulates one path's request latencies, wall time, process
// CPU and heap allocations (all goroutines: caller, node, backend).
type pathStats struct {
	lat     []time.Duration
	el, cpu time.Duration
	mallocs uint64
}

// measureRounds runs b.N requests on each path in alternating rounds, so a
// change in machine load during the run (the box is shared) hits every
// path alike.
func measureRounds(b *testing.B, conc int, direct, proxied, node func(int) error) (d, p, n pathStats) {
	const rounds = 8
	for r := range rounds {
		lo, hi := b.N*r/rounds, b.N*(r+1)/rounds
		if hi == lo {
			continue
		}
		for _, path := range []struct {
			hop string
			st  *pathStats
			do  func(int) error
		}{{"caller-direct", &d, direct}, {"caller-proxy", &p, proxied}, {"caller-node", &n, node}} {
			m0 := mallocs()
			c0 := testutil.ProcessCPU()
			var lat []time.Duration
			var el time.Duration
			labelled(path.hop, func() { lat, el = runLoad(b, lo, hi, conc, path.do) })
			path.st.lat, path.st.el, path.st.cpu = append(path.st.lat, lat...), path.st.el+el, path.st.cpu+testutil.ProcessCPU()-c0
			path.st.mallocs += mallocs() - m0
		}
	}
	return d, p, n
}

// reportOverhead reports the metrics listed on BenchmarkNodeOverhead.
func reportOverhead(b *testing.B, d, p, n pathStats) {
	dRate, nRate := float64(len(d.lat))/d.el.Seconds(), float64(len(n.lat))/n.el.Seconds()
	pRate := float64(len(p.lat)) / p.el.Seconds()
	dp50, dp99 := pct(d.lat, 50), pct(d.lat, 99)
	np50, np99 := pct(n.lat, 50), pct(n.lat, 99)
	b.ReportMetric(us(dp50), "direct-p50-µs")
	b.ReportMetric(us(dp99), "direct-p99-µs")
	b.ReportMetric(us(np50), "node-p50-µs")
	b.ReportMetric(us(np99), "node-p99-µs")
	b.ReportMetric(us(np50-dp50), "overhead-p50-µs")
	b.ReportMetric(us(np99-dp99), "overhead-p99-µs")
	b.ReportMetric(dRate, "direct-req/s")
	b.ReportMetric(nRate, "node-req/s")
	b.ReportMetric(nRate/dRate, "throughput-ratio")
	b.ReportMetric(us(pct(p.lat, 50)), "proxy-p50-µs")
	b.ReportMetric(pRate, "proxy-req/s")
	b.ReportMetric(pRate/dRate, "proxy-ratio")
	b.ReportMetric(nRate/pRate, "node-vs-proxy")
	// CPU per request is what a saturated machine divides its cores by; it
	// hardly moves with other load on a shared box, unlike req/s.
	perReq := func(st pathStats) float64 { return us(st.cpu) / float64(len(st.lat)) }
	b.ReportMetric(perReq(d), "direct-cpu-µs/req")
	b.ReportMetric(perReq(p), "proxy-cpu-µs/req")
	b.ReportMetric(perReq(n), "node-cpu-µs/req")
	// Allocations drive GC work, which all paths share.
	allocs := func(st pathStats) float64 { return float64(st.mallocs) / float64(len(st.lat)) }
	b.ReportMetric(allocs(p), "proxy-allocs/req")
	b.ReportMetric(allocs(n), "node-allocs/req")
}

// mallocs is the process's heap allocation count so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// startProxy runs a bare reverse proxy to target on 127.0.0.1:0 and
// returns its URL: the lower bound of any one-hop bridge.
func startProxy(b *testing.B, target string) string {
	b.Helper()
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	rp.Transport = tr
	rp.BufferPool = &proxyBuffers{} // without it every response allocates 32 KiB
	srv := httptest.NewServer(rp)
	b.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	return srv.URL
}

// runLoad runs requests lo..hi-1 over conc workers and returns each
// request's latency and the wall time. Any failed request fails the benchmark.
func runLoad(b *testing.B, lo, hi, conc int, do func(i int) error) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, hi-lo)
	var next atomic.Int64
	next.Store(int64(lo))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= hi || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := do(i); err != nil {
					failed.Store(&err)
					return
				}
				lat[i-lo] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
	return lat, time.Since(start)
}

// warm sends min(2·conc, 256) requests one after another, outside the
// timings, so connections and code paths are hot.
func warm(b *testing.B, conc int, do func(int) error) {
	for i := range min(conc*2, 256) {
		if err := do(i); err != nil {
			b.Fatal(err)
		}
	}
}

// labelled runs f with the profiler label hop=name. Goroutines inherit the
// labels of the goroutine that starts them, so every server, connection and
// worker goroutine of one hop carries its name, and a CPU profile splits by
// hop: caller-direct, caller-proxy, caller-node, proxy, node, backend.
//
//	go test -run '^$' -bench 'NodeOverhead/plain/c=32$' -benchtime 8000x -cpuprofile cpu.out ./dirbridge/httpapi/
//	go tool pprof -tags cpu.out                  # CPU share of each hop
//	go tool pprof -tagfocus hop=node -top cpu.out
func labelled(name string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("hop", name), func(context.Context) { f() })
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// proxyBuffers is the ReverseProxy copy-buffer pool.
type proxyBuffers struct{ p sync.Pool }

func (b *proxyBuffers) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *proxyBuffers) Put(v []byte) { b.p.Put(&v) }
