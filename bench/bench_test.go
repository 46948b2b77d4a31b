package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRunAllScenariosShort runs every scenario for a moment (the 50-node
// convergence is left to the real command) and checks the report is
// complete and adds up: no wall-clock value is judged, only counts.
func TestRunAllScenariosShort(t *testing.T) {
	args := []string{"-json", "-duration", "120ms", "-rounds", "2", "-concurrency", "1,4",
		"-converge=false", "-dir-nodes", "300", "-dir-intents", "4", "-wire-benchtime", "5x",
		"-stream-tokens", "4", "-stream-interval", "2ms", "-stream-concurrency", "1,2"}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if code := run(ctx, args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, errOut.String(), out.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	if got := strings.Join(rep.Scenarios, ","); got != "task,mesh,directory,wire,stream" {
		t.Errorf("scenarios run = %s", got)
	}
	// task: 4 paths, mesh: 5 paths, directory: 2 paths, each at 2 concurrencies.
	perScenario := map[string]int{}
	for _, r := range rep.Rows {
		perScenario[r.Scenario]++
		checkRow(t, r)
		// Issue 11 item 9: every run reports node-http against the proxy hop.
		if wantVs := r.Scenario == "task" && r.Path == "node-http"; wantVs != (r.VsProxy > 0) {
			t.Errorf("%s %s c=%d: vs proxy× %v", r.Scenario, r.Path, r.Concurrency, r.VsProxy)
		}
	}
	for sc, want := range map[string]int{"task": 8, "mesh": 10, "directory": 4} {
		if perScenario[sc] != want {
			t.Errorf("%s: %d rows, want %d", sc, perScenario[sc], want)
		}
	}
	if len(rep.Wire) != len(wireSizes)*2*len(wireCodecs) {
		t.Errorf("wire rows = %d", len(rep.Wire))
	}
	for _, w := range rep.Wire {
		if w.NsPerOp <= 0 || w.WireBytes <= 0 || (w.Codec == "json" && w.VsJSON != 1) {
			t.Errorf("wire row %+v", w)
		}
	}
	if len(rep.Stream) != 4 {
		t.Errorf("stream rows = %d, want 4", len(rep.Stream))
	}
	for _, r := range rep.Stream {
		if r.Requests == 0 || r.Failed != 0 || r.TTFTp50ms <= 0 || r.TokensPerSec <= 0 || (r.Path != "direct" && r.Throughput <= 0) {
			t.Errorf("stream row %+v", r)
		}
	}
	if len(rep.Checks) == 0 {
		t.Error("no consistency checks reported")
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Info)
		}
	}
	if d := rep.Directory; d == nil || d.Nodes != 300 || d.Method != populateApply {
		t.Errorf("directory setup = %+v", d)
	}
	if rep.Converge != nil {
		t.Error("convergence measured although -converge=false")
	}
	if rep.Machine.GOMAXPROCS < 1 || rep.Machine.GoVersion == "" {
		t.Errorf("machine = %+v", rep.Machine)
	}
}

// checkRow: every request accounted for, baselines compared.
func checkRow(t *testing.T, r Row) {
	t.Helper()
	if r.OK == 0 || r.Failed != 0 || r.Mismatched != 0 || r.FirstError != "" {
		t.Errorf("%s %s c=%d: ok %d failed %d mismatched %d (%s)", r.Scenario, r.Path, r.Concurrency, r.OK, r.Failed, r.Mismatched, r.FirstError)
	}
	if r.P50us <= 0 || r.P99us < r.P50us || r.PerSec <= 0 {
		t.Errorf("%s %s c=%d: p50 %v p99 %v rate %v", r.Scenario, r.Path, r.Concurrency, r.P50us, r.P99us, r.PerSec)
	}
	isBaseline := r.Path == "direct" || r.Scenario == "directory"
	if isBaseline != (r.Baseline == "") || (!isBaseline && r.Throughput <= 0) {
		t.Errorf("%s %s c=%d: baseline %q throughput× %v", r.Scenario, r.Path, r.Concurrency, r.Baseline, r.Throughput)
	}
}

// TestDirectoryRegisterPopulate covers populating every node through the
// real register route.
func TestDirectoryRegisterPopulate(t *testing.T) {
	args := []string{"-json", "-only", "directory", "-duration", "60ms", "-rounds", "1", "-concurrency", "2",
		"-dir-nodes", "60", "-dir-intents", "3", "-dir-populate", "register"}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if d := rep.Directory; d == nil || d.Method != populateRegister || d.Nodes != 60 {
		t.Fatalf("directory setup = %+v", rep.Directory)
	}
	for _, r := range rep.Rows {
		checkRow(t, r)
	}
}

// TestMisattributedAnswersAreCounted: an answer carrying another task's
// task_id or another request's content is a mismatch, not a success.
func TestMisattributedAnswersAreCounted(t *testing.T) {
	good := json.RawMessage(`{"choices":[{"message":{"role":"assistant","content":"bench p 1"}}]}`)
	cases := []struct {
		name string
		resp wire.Response
		want error
	}{
		// The right task with its own content.
		{"own answer", wire.Response{TaskID: "t1", Status: wire.StatusSuccess, Result: good}, nil},
		// Another task's RESPONSE.
		{"other task_id", wire.Response{TaskID: "t2", Status: wire.StatusSuccess, Result: good}, errMismatch},
		// The right task_id carrying another request's completion.
		{"other content", wire.Response{TaskID: "t1", Status: wire.StatusSuccess,
			Result: json.RawMessage(`{"choices":[{"message":{"content":"bench p 2"}}]}`)}, errMismatch},
	}
	for _, tc := range cases {
		err := checkResponse(&tc.resp, "t1", prompt("p", 1))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	failed := wire.Response{TaskID: "t1", Status: wire.StatusError, Error: wire.NewError(wire.CodeCapacityExceeded, "busy")}
	if err := checkResponse(&failed, "t1", "x"); err == nil || errors.Is(err, errMismatch) {
		t.Errorf("error RESPONSE: err = %v, want a plain failure", err)
	}

	// runWindow sorts outcomes into ok, failed and mismatched.
	p := &path{name: "p", do: func(_ context.Context, seq int64) error {
		switch seq % 3 {
		case 0:
			return errMismatch
		case 1:
			return errors.New("refused")
		}
		return nil
	}}
	var tl tally
	runWindow(context.Background(), p, 2, 20*time.Millisecond, &tl)
	if total := tl.ok + tl.failed + tl.mismatch; total != p.seq.Load() || tl.mismatch == 0 || tl.failed == 0 {
		t.Errorf("ok %d failed %d mismatched %d of %d requests", tl.ok, tl.failed, tl.mismatch, p.seq.Load())
	}
	if int64(len(tl.lat)) != tl.ok {
		t.Errorf("%d latencies for %d successes", len(tl.lat), tl.ok)
	}
}

func TestFlagsRejectBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "task,nope"},
		{"-concurrency", "0"},
		{"-concurrency", "1,x"},
		{"-duration", "-1s"},
		{"-dir-populate", "magic"},
		{"-converge-transport", "udp"},
		{"-mesh-attempts", "0"},
		{"-wire-benchtime", "0x"},
		{"-only", "dirscale", "-nodes", "0"},
		{"-only", "dirscale", "-scale-duration", "0s"},
		{"-only", "dirscale", "-discover-rate", "-5"},
		{"stray"},
	} {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Microsecond
	}
	if p := percentile(d, 50); p != 50*time.Microsecond {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 99*time.Microsecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(d[:1], 99); p != time.Microsecond {
		t.Errorf("p99 of one = %v", p)
	}
}

// BenchmarkStreamTTFT: a streamed chat (32 tokens, one per 20 ms) through
// the OpenAI gateway → libp2p task stream → serving node, against the
// backend called directly, same run. Reported: TTFT p50 of each path, the
// TTFT the mesh adds, and tokens/s of each path with their ratio.
//
//	go test -run '^$' -bench StreamTTFT -benchtime 40x ./bench
func BenchmarkStreamTTFT(b *testing.B) {
	st, err := newStreamStack(context.Background(), 32, 20*time.Millisecond, 64)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := st.close(); err != nil {
			b.Error(err)
		}
	}()
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			var direct, gateway streamTally
			perRound := max(int64(b.N/2), int64(conc))
			for range 2 {
				streamWindow(b.Context(), st.client, st.backend, conc, time.Hour, perRound, &direct)
				streamWindow(b.Context(), st.client, st.gateway, conc, time.Hour, perRound, &gateway)
			}
			d, g := direct.row("direct", conc), gateway.row("gateway", conc)
			if d.Failed+g.Failed > 0 {
				b.Fatalf("failed requests: direct %s, gateway %s", d.FirstError, g.FirstError)
			}
			b.ReportMetric(d.TTFTp50ms, "direct_ttft_ms")
			b.ReportMetric(g.TTFTp50ms, "gateway_ttft_ms")
			b.ReportMetric(g.TTFTp50ms-d.TTFTp50ms, "added_ttft_ms")
			b.ReportMetric(d.TokensPerSec, "direct_tok/s")
			b.ReportMetric(g.TokensPerSec, "gateway_tok/s")
			b.ReportMetric(g.TokensPerSec/d.TokensPerSec, "tok/s_ratio")
		})
	}
}

// TestDirScaleSmoke runs the dirscale scenario at 200 nodes: a seed and a
// replica as real `meshnode directory` processes, registrations through
// the real route, paced heartbeats and discover, the lag probe. Only
// counts are judged (the 100k figures come from the real command).
func TestDirScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the meshnode binary")
	}
	args := []string{"-json", "-only", "dirscale", "-nodes", "200", "-intents", "4", "-scale-duration", "2s",
		"-discover-rate", "100", "-heartbeat-rate", "50"}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if code := run(ctx, args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstderr: %s\nstdout: %s", code, errOut.String(), out.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	d := rep.DirScale
	if d == nil || d.Nodes != 200 || d.Intents != 4 {
		t.Fatalf("dirscale = %+v", d)
	}
	for name, r := range map[string]PacedResult{"heartbeat": d.Heartbeat, "discover": d.Discover} {
		if r.OK == 0 || r.Failed != 0 || r.P99ms < r.P50ms || r.PerSec <= 0 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if d.Lag.Samples == 0 || d.Lag.Lost != 0 || d.ReplicaBootstrapS <= 0 || d.RegisterPerSec <= 0 {
		t.Errorf("lag %+v, bootstrap %vs, register %v/s", d.Lag, d.ReplicaBootstrapS, d.RegisterPerSec)
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil && (d.SeedCPUus <= 0 || d.SeedGoSysMiB <= 0 || d.SeedHeapMiB <= 0) {
		t.Errorf("seed CPU %v µs/req, Sys %v MiB, heap %v MiB", d.SeedCPUus, d.SeedGoSysMiB, d.SeedHeapMiB)
	}
	if d.SeedFiles["directory.db"] == 0 || d.ReplicaFiles == nil {
		t.Errorf("seed files %v, replica files %v", d.SeedFiles, d.ReplicaFiles)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil && (d.SeedRSSMiB <= 0 || d.ReplicaRSSMiB <= 0) {
		t.Errorf("RSS seed %v MiB, replica %v MiB", d.SeedRSSMiB, d.ReplicaRSSMiB)
	}
	if len(d.Targets) != 4 {
		t.Errorf("targets = %+v", d.Targets)
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Info)
		}
	}
}

// TestNodeListCount: the discover pacer's cheap check reads the count of a
// real NODELIST prefix and refuses anything else.
func TestNodeListCount(t *testing.T) {
	for in, want := range map[string]int{`{"count":12,"data_class":"x"}`: 12, `{"count":0,"nodes":[]}`: 0} {
		if n, ok := nodeListCount([]byte(in)); !ok || n != want {
			t.Errorf("%s: %d %v, want %d", in, n, ok, want)
		}
	}
	for _, in := range []string{``, `{"error":{"code":"x"}}`, `{"count":"3"}`, `{"count":12345678}`} {
		if _, ok := nodeListCount([]byte(in)); ok {
			t.Errorf("%s accepted", in)
		}
	}
}

// TestCallJSONMatchesWire: the bridge callers' CALL encoding is byte for
// byte what json.Marshal(*wire.Call) gives the same CALL (what an SDK
// sends), so the faster caller sends the node nothing different.
func TestCallJSONMatchesWire(t *testing.T) {
	s := &nodeStack{token: "0123456789abcdef0123456789abcdef"}
	for seq := int64(0); seq < 3; seq++ {
		call, want := s.call("node-http", seq)
		wantBody, err := json.Marshal(call)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(s.callJSON(call.TaskID, want))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(wantBody) {
			t.Fatalf("bench CALL encoding differs:\n got %s\nwant %s", got, wantBody)
		}
	}
}
