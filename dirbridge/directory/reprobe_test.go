package directory

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testutil"
	dto "github.com/prometheus/client_model/go"
)

// countingListener counts accepted connections (probes are TCP connects).
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// flakyNode is a real TLS node endpoint that can go down and come back on
// the same port.
type flakyNode struct {
	t    *testing.T
	port string
	srv  *httptest.Server
	ln   *countingListener
}

func (f *flakyNode) up() {
	f.t.Helper()
	addr := "127.0.0.1:0"
	if f.port != "" {
		addr = "127.0.0.1:" + f.port
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatalf("listening on %s: %v", addr, err)
	}
	f.ln = &countingListener{Listener: ln}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}))
	f.srv.Listener = f.ln
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // bare TCP probes never finish a handshake
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{getCA(f.t).leaf}, MinVersion: tls.VersionTLS13}
	f.srv.StartTLS()
	_, f.port, _ = net.SplitHostPort(ln.Addr().String())
}

func (f *flakyNode) down() { f.srv.Close() }

// startFlaky runs a directory whose background prober is off (tests run
// rounds themselves on the test clock) beside a flaky node endpoint reached
// as flaky.meshtest.net.
func startFlaky(t *testing.T) (*harness, *flakyNode, *fakeClock) {
	t.Helper()
	flaky := &flakyNode{t: t}
	flaky.up()
	t.Cleanup(func() { flaky.srv.Close() })
	node := newHealthNode(t)
	cfg := testConfig(t, node, t.TempDir())
	cfg.Resolve = append(cfg.Resolve, "flaky.meshtest.net:"+flaky.port+":127.0.0.1")
	cfg.StaleAfter = 24 * time.Hour // liveness is not what these tests test
	cfg.ReprobeInterval = -1
	clock := newFakeClock()
	return startWith(t, node, cfg, clock), flaky, clock
}

// TestDIR_PROBE_NODE_01_DownAndUp: the directory's scheduled probe keeps a
// reachable node discoverable, hides it after two failed probes in a row
// (one failure is not enough), shows it unavailable and unreachable with an
// observed health reading, and restores it on the first probe it answers
// again. The node never stops heartbeating meanwhile (its liveness is not
// what is tested). Probes dial real listeners; the clock is the test's.
func TestDIR_PROBE_NODE_01_DownAndUp(t *testing.T) {
	h, flaky, clock := startFlaky(t)
	body := h.regBody("node1")
	body["endpoint"] = "https://flaky.meshtest.net:" + flaky.port
	id, _ := h.register(body)

	const interval = minReprobeInterval
	p := newReprober(h.s, interval, 4)
	ctx := context.Background()
	// round advances the clock past any booked slot and runs one round.
	round := func() { clock.Advance(interval + interval/10 + time.Second); p.round(ctx) }
	served := func() bool {
		_, nodes := h.discover("intent=urn:iicp:intent:llm:chat:v1")
		for _, n := range nodes {
			if n["node_id"] == id {
				return true
			}
		}
		return false
	}
	detail := func() map[string]any { return h.do(http.MethodGet, "/v1/node/"+id, nil, nil).json(t) }

	p.round(ctx) // first sight: the slot is spread over one interval
	round()
	if d := detail(); !served() || d["reachability_tier"] != "direct" || d["available"] != true {
		t.Fatalf("reachable node: served %v, detail %v", served(), d)
	}
	reach := detail()["health"].(map[string]any)["components"].(map[string]any)["reachability"].(map[string]any)
	if reach["observed"] != true || reach["test_id"] != "DIR-PROBE-NODE-01" || reach["score"] != 1.0 {
		t.Fatalf("health reachability after a successful probe: %v", reach)
	}

	flaky.down()
	round()
	if !served() {
		t.Fatal("one failed probe hid the node (confirm-probe rule: never on a single failure)")
	}
	round()
	if served() {
		t.Fatal("node still discoverable after two failed probes")
	}
	d := detail()
	reach = d["health"].(map[string]any)["components"].(map[string]any)["reachability"].(map[string]any)
	if d["available"] != false || d["reachability_tier"] != "unreachable" || reach["score"] != 0.0 || reach["observed"] != true {
		t.Fatalf("demoted node detail: available %v tier %v reachability %v", d["available"], d["reachability_tier"], reach)
	}

	var m dto.Metric
	_ = h.s.metrics.reprobes.WithLabelValues("probe_connect_failed").Write(&m)
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Fatalf("meshnode_directory_active_probes_total{result=probe_connect_failed} = %v, want 2", n)
	}
	flaky.up() // same port
	round()
	if d := detail(); !served() || d["reachability_tier"] != "direct" {
		t.Fatalf("recovered node: served %v, tier %v", served(), d["reachability_tier"])
	}

	// Never faster than the interval: rounds every quarter interval over two
	// intervals probe the address at most twice (counted by the probe
	// times the node records, and seen by the listener).
	e := h.s.store.idx.get(id)
	before, probes := flaky.ln.n.Load(), 0
	for range 8 {
		at := e.state.Load().Reach.At
		clock.Advance(interval / 4)
		p.round(ctx)
		if !e.state.Load().Reach.At.Equal(at) {
			probes++
		}
	}
	if probes < 1 || probes > 2 {
		t.Fatalf("%d probes of one address in two intervals, want 1 or 2", probes)
	}
	testutil.WaitFor(t, 5*time.Second, "the probe's connection at the node", func() bool { return flaky.ln.n.Load() > before })
}

// TestReprobeOneDialPerAddress: nodes sharing an endpoint address are
// probed by one dial per round.
func TestReprobeOneDialPerAddress(t *testing.T) {
	h, flaky, clock := startFlaky(t)
	for _, path := range []string{"/a", "/b", "/c"} {
		body := h.regBody("node1")
		body["endpoint"] = "https://flaky.meshtest.net:" + flaky.port + path
		h.register(body)
	}
	p := newReprober(h.s, minReprobeInterval, 4)
	p.round(context.Background())
	before := flaky.ln.n.Load()
	clock.Advance(2 * minReprobeInterval)
	p.round(context.Background())
	testutil.WaitFor(t, 5*time.Second, "the probe's connection", func() bool { return flaky.ln.n.Load() > before })
	time.Sleep(100 * time.Millisecond) // let a (wrong) second dial's accept land; not a wait for a condition
	if n := flaky.ln.n.Load() - before; n != 1 {
		t.Fatalf("%d dials for three nodes at one address, want 1", n)
	}
}

// TestReprobeIntervalFloor: outside dev mode the interval cannot go below
// iicp-dir.md §3.14's 300 s; the error names the fix.
func TestReprobeIntervalFloor(t *testing.T) {
	cfg := Config{StateDir: t.TempDir(), ReprobeInterval: time.Minute}
	cfg.applyDefaults()
	err := cfg.validate()
	if err == nil || !strings.Contains(err.Error(), "at least 5m0s") {
		t.Fatalf("validate: %v", err)
	}
	cfg.Dev = true
	if err := cfg.validate(); err != nil {
		t.Fatalf("dev mode: %v", err)
	}
}
