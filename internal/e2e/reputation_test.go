package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

// probationTasks is the directory's probation_min_tasks in these tests.
const probationTasks = 5

// TestREP_01_ProbationGraduationEndToEnd: two fresh `meshnode up` nodes at a
// `meshnode directory` (probation_min_tasks 5, no minimum age). Both
// start in probation, and a qos=interactive discover shows only one of
// them (one probationary node per source network). `meshnode call --qos
// interactive` tasks go to that node; its heartbeats carry the real
// outcome counters in metrics batches, the directory applies them
// (completed_tasks_count, reputation 0.5 + 0.01 per task), the node reads
// reputation_score and metrics_batch_accepted back into `meshnode status`,
// and it graduates: interactive discover then lists it among graduated
// nodes, with the fresh node beside it.
func TestREP_01_ProbationGraduationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, calls := testBackend(t)
	base := t.TempDir()
	dirHome, h1, h2 := filepath.Join(base, "dir"), filepath.Join(base, "n1"), filepath.Join(base, "n2")
	for _, h := range []string{h1, h2} {
		writeTestConfig(t, h)
	}
	writeConfig(t, dirHome, fmt.Sprintf("[directory_server]\nprobation_min_tasks = %d\nprobation_min_age = \"0s\"\n", probationTasks))
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--no-seed-log", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	nodeArgs := []string{"up", "--dev", "--directory", dirURL, "--backend", backend.URL, "--http", "127.0.0.1:0", "--no-mesh"}
	n1 := start(t, "node1", bin, append([]string{"--home", h1}, nodeArgs...)...)
	n2 := start(t, "node2", bin, append([]string{"--home", h2}, nodeArgs...)...)
	homeOf := map[string]string{runtimeOf(t, n1, h1).NodeID: h1, runtimeOf(t, n2, h2).NodeID: h2}
	eventually(t, 15*time.Second, "both nodes registered", func() bool { return len(discover(t, dirURL)) == 2 })

	shown := discoverQoS(t, dirURL, wire.QoSInteractive)
	if len(shown) != 1 {
		t.Fatalf("interactive discover with two probationary loopback nodes: %v, want exactly one", shown)
	}
	chosen := shown[0]
	if d := nodeDetailOf(t, dirURL, chosen); d["probation"] != true || d["reputation_score"] != 0.5 {
		t.Fatalf("fresh node: %v", d)
	}
	for i := range probationTasks + 1 {
		out, code := run(t, bin, 30*time.Second, "--home", h2, "call", "--json", "--qos", wire.QoSInteractive, fmt.Sprintf("task %d", i))
		var res admin.CallResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Response == nil || res.Response.NodeID != chosen {
			t.Fatalf("call %d: exit %d %s", i, code, out)
		}
	}
	if calls.Load() != probationTasks+1 {
		t.Fatalf("backend ran %d tasks", calls.Load())
	}

	var detail map[string]any
	eventually(t, 20*time.Second, "the node graduates", func() bool {
		detail = nodeDetailOf(t, dirURL, chosen)
		return detail["probation"] == false
	})
	if detail["completed_tasks_count"] != float64(probationTasks+1) || detail["reputation_score"] != 0.56 {
		t.Fatalf("directory after %d tasks: %v", probationTasks+1, detail)
	}
	var rep admin.Status
	eventually(t, 10*time.Second, "status shows the reputation", func() bool {
		st := status(t, bin, homeOf[chosen])
		if st == nil || len(st.Directories) == 0 {
			return false
		}
		rep = *st
		r := st.Directories[0].Reputation
		return r.Score != nil && *r.Score == 0.56 && r.ReportedSuccess == probationTasks+1 && r.BatchAccepted != ""
	})
	if r := rep.Directories[0].Reputation; r.Model != "outcome-v2" || r.ReportedFailed != 0 {
		t.Fatalf("status reputation: %+v", r)
	}
	text, _ := run(t, bin, 10*time.Second, "--home", homeOf[chosen], "status")
	if !strings.Contains(text, "reputation 0.56 (outcome-v2), tasks reported 6 ok / 0 failed") {
		t.Fatalf("status text:\n%s", text)
	}

	shown = discoverQoS(t, dirURL, wire.QoSInteractive)
	if len(shown) != 2 || !contains(shown, chosen) {
		t.Fatalf("interactive discover after graduation: %v, want the graduated node and the fresh one", shown)
	}
	for _, p := range []*proc{n2, n1, dir} {
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Errorf("%s exited %d\n%s", p.name, code, p.stderr())
		}
	}
}

// writeConfig writes a test-profile config.toml with extra TOML appended.
func writeConfig(t *testing.T, home, extra string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "version = 1\nprofile = \"test\"\n" + extra
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// discoverQoS returns the node_ids a discover for chat at qos lists, in order.
func discoverQoS(t *testing.T, dirURL, qos string) []string {
	t.Helper()
	var nl wire.NodeList
	getJSON(t, dirURL+"/v1/discover?intent="+wire.IntentChat+"&limit=50&qos="+qos, &nl)
	var ids []string
	for _, n := range nl.Nodes {
		ids = append(ids, n.NodeID)
	}
	return ids
}

func nodeDetailOf(t *testing.T, dirURL, id string) map[string]any {
	t.Helper()
	var m map[string]any
	getJSON(t, dirURL+"/v1/node/"+id, &m)
	return m
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
