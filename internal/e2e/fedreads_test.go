package e2e

import (
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
)

// TestNodeReadsFromReplicaWritesToSeed (issue 17 item 2): a seed and a
// replica run as `meshnode directory` processes; two nodes are started
// with the seed's URL only. Each learns the replica from the seed's
// /.well-known/iicp-replicas.json, registers and heartbeats at the seed
// and reads (discover) from the replica, whose answers it verifies
// (DIR-FED-20); `meshnode status` says so. A call is found through the
// replica. The seed is then killed: reads keep being served by the
// replica — a `meshnode call` still finds the serving node through it —
// and status shows the seed down and the replica serving reads.
func TestNodeReadsFromReplicaWritesToSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	seedHome, repHome := filepath.Join(base, "seed"), filepath.Join(base, "replica")
	homes := []string{filepath.Join(base, "n1"), filepath.Join(base, "n2")}
	for _, h := range append([]string{seedHome, repHome}, homes...) {
		writeTestConfig(t, h)
	}
	seed := start(t, "seed", bin, "--home", seedHome, "directory", "--dev", "--listen", "127.0.0.1:0")
	seedURL := directoryURL(t, seed)
	rep := start(t, "replica", bin, "--home", repHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--seed", seedURL)
	repURL := directoryURL(t, rep)
	var rts []admin.Runtime
	for i, h := range homes {
		n := start(t, filepath.Base(h), bin, "--home", h, "up", "--dev", "--directory", seedURL,
			"--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh")
		rts = append(rts, runtimeOf(t, n, homes[i]))
	}
	eventually(t, 20*time.Second, "both nodes at the replica", func() bool {
		d := discover(t, repURL)
		return d[rts[0].NodeID] && d[rts[1].NodeID]
	})

	// Reads go to the replica (learned via well-known, signed), writes to the seed.
	var st *admin.Status
	eventually(t, 20*time.Second, "node 2 reading from the replica", func() bool {
		st = status(t, bin, homes[1])
		r := readsOf(st, seedURL)
		return r != nil && servingRead(r) == repURL
	})
	if len(st.Directories) != 1 || st.Directories[0].Directory != seedURL || st.Directories[0].State != "registered" {
		t.Fatalf("writes: %+v, want one registration at the seed", st.Directories)
	}
	r := readsOf(st, seedURL)
	repRow := readRow(r, repURL)
	if repRow == nil || repRow.Role != dirclient.RoleReplica || repRow.Source != dirclient.SourceWellKnown || !repRow.Signed || !repRow.Healthy {
		t.Fatalf("replica read row %+v", repRow)
	}
	text, code := run(t, bin, 10*time.Second, "--home", homes[1], "status")
	if code != 0 || !containsAll(text, "reads for "+seedURL, repURL+" (replica)", "writes go to the seed") {
		t.Fatalf("status text lacks the read/write split:\n%s", text)
	}

	// A call through node 2 discovers node 1 at the replica.
	readsBefore := readRow(readsOf(status(t, bin, homes[1]), seedURL), repURL).Reads
	res := callJSON(t, bin, homes[1], "via the replica")
	if res.NodeID != rts[0].NodeID && res.NodeID != rts[1].NodeID {
		t.Fatalf("call answered by %q", res.NodeID)
	}
	after := readsOf(status(t, bin, homes[1]), seedURL)
	if readRow(after, repURL).Reads <= readsBefore || readRow(after, seedURL).Reads != 0 {
		t.Fatalf("reads after the call: %+v (replica had %d)", after.Directories, readsBefore)
	}

	checkClientCallReadsReplica(t, bin, seedURL, repURL)

	// The seed dies: reads ride it out on the replica.
	seed.stop(syscall.SIGKILL, 10*time.Second)
	checkReadsWithoutSeed(t, bin, homes[1], seedURL, repURL, []string{rts[0].NodeID, rts[1].NodeID})
	if code := rep.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Errorf("replica exit code %d", code)
	}
}

// checkReadsWithoutSeed: with the seed dead, status shows it down and the
// replica serving reads, and a call through the node at home discovers one
// of nodes through the replica.
func checkReadsWithoutSeed(t *testing.T, bin, home, seedURL, repURL string, nodes []string) {
	t.Helper()
	eventually(t, 20*time.Second, "status to show the seed down", func() bool {
		s := status(t, bin, home)
		sr := readRow(readsOf(s, seedURL), seedURL)
		return sr != nil && sr.Probed && !sr.Healthy && servingRead(readsOf(s, seedURL)) == repURL
	})
	before := readRow(readsOf(status(t, bin, home), seedURL), repURL).Reads
	out, _ := run(t, bin, 30*time.Second, "--home", home, "call", "--json", "seed is down")
	var down admin.CallResult
	if err := json.Unmarshal([]byte(out), &down); err != nil {
		t.Fatalf("call --json with the seed down: %q", out)
	}
	// Discover went to the replica and found a serving node. Whether that
	// node accepts the call depends on a consumer token, which only the
	// seed issues (single-use, bound to the caller): with the seed down
	// the node answers 401, and the CLI prints that answer.
	if down.Path != admin.PathHTTP || !slices.Contains(nodes, down.NodeID) {
		t.Fatalf("call with the seed down: %+v", down)
	}
	s := status(t, bin, home)
	if got := readRow(readsOf(s, seedURL), repURL).Reads; got <= before {
		t.Fatalf("replica reads %d → %d: the call's discover did not go to the replica", before, got)
	}
	t.Logf("with the seed down: call found node %s via the replica (answer %+v)", down.NodeID, down.Response)
}

// checkClientCallReadsReplica: `meshnode call --directory SEED` from a home
// with no node (a client, not a node) also reads from the replica the seed
// lists: the replica serves its discover, the seed none. Without a token
// the chosen node answers 401 (as in TestEndToEnd), which is beside the
// point here.
func checkClientCallReadsReplica(t *testing.T, bin, seedURL, repURL string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "client")
	writeTestConfig(t, home)
	seedBefore, repBefore := discoverServed(t, seedURL), discoverServed(t, repURL)
	out, _ := run(t, bin, 30*time.Second, "--home", home, "call", "--json", "--directory", seedURL, "client read")
	var res admin.CallResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Path != admin.PathHTTP || res.NodeID == "" {
		t.Fatalf("call --directory: %q", out)
	}
	if s, r := discoverServed(t, seedURL), discoverServed(t, repURL); s != seedBefore || r <= repBefore {
		t.Fatalf("client discover: seed served %v → %v, replica %v → %v; want the replica only", seedBefore, s, repBefore, r)
	}
}

// discoverServed sums a directory's /metrics count of GET /v1/discover.
func discoverServed(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := plainClient.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "meshnode_directory_requests_total{") && strings.Contains(line, `route="/v1/discover"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += v
		}
	}
	return n
}

func readsOf(st *admin.Status, seed string) *admin.DirectoryReads {
	if st == nil {
		return nil
	}
	for i := range st.DirectoryReads {
		if st.DirectoryReads[i].Seed == seed {
			return &st.DirectoryReads[i]
		}
	}
	return nil
}

func servingRead(r *admin.DirectoryReads) string {
	if r == nil {
		return ""
	}
	for _, d := range r.Directories {
		if d.Serving {
			return d.URL
		}
	}
	return ""
}

func readRow(r *admin.DirectoryReads, u string) *dirclient.ReadStatus {
	if r == nil {
		return nil
	}
	for i := range r.Directories {
		if r.Directories[i].URL == u {
			return &r.Directories[i]
		}
	}
	return nil
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
