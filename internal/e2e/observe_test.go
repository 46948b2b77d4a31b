package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/config"
)

// writeJSONLogConfig is the test profile with JSON logs and extra lines.
func writeJSONLogConfig(t *testing.T, home, extra string) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "version = 1\nprofile = \"test\"\n[log]\nformat = \"json\"\n" + extra
	if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// scrape returns the Prometheus text exposition at u + "/metrics".
func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := plainClient.Get(u + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// hasSeries reports whether the exposition has a sample line matching re
// (anchored at the start of a line).
func hasSeries(metrics, re string) bool {
	return regexp.MustCompile(`(?m)^` + re).MatchString(metrics)
}

// jsonLines decodes every stderr line; a line that is not JSON fails.
func jsonLines(t *testing.T, name, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: log line is not JSON with log.format=json: %q", name, sc.Text())
		}
		out = append(out, rec)
	}
	return out
}

func findLog(recs []map[string]any, msg string) map[string]any {
	for _, r := range recs {
		if r["msg"] == msg {
			return r
		}
	}
	return nil
}

// Issue 11 item 7, with real processes: a seed directory, a replica and a
// node. Each process serves one metrics vocabulary on /metrics (the spec's
// iicp_* series, meshnode_* in base units, Go and process collectors,
// meshnode_build_info) with the node's state gauges; with log.format=json
// every stderr line is JSON, libp2p's own lines included, and every
// subsystem printed is one [log.levels] accepts. The directory logs a
// replica join, a rejected registration (reason and code, not the token
// it carried: SEC-LOG-01) and an expiry (METRICS-01/03/04).
func TestObservabilityMetricsAndLogs(t *testing.T) {
	bin := buildBinary(t)
	backend, _ := testBackend(t)
	base := t.TempDir()
	dirHome, repHome, nodeHome := filepath.Join(base, "dir"), filepath.Join(base, "rep"), filepath.Join(base, "node")
	writeJSONLogConfig(t, dirHome, "")
	writeJSONLogConfig(t, repHome, "")
	writeJSONLogConfig(t, nodeHome, "[log.levels]\nlibp2p = \"debug\"\n")

	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0")
	dirURL := directoryURL(t, dir)
	rep := start(t, "replica", bin, "--home", repHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--seed", dirURL)
	directoryURL(t, rep)
	node := start(t, "node", bin, "--home", nodeHome, "up", "--dev", "--directory", dirURL,
		"--backend", backend.URL, "--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1")
	rt := runtimeOf(t, node, nodeHome)
	eventually(t, 15*time.Second, "node discoverable", func() bool { return discover(t, dirURL)[rt.NodeID] })
	if out, code := run(t, bin, 30*time.Second, "--home", nodeHome, "call", "hello metrics"); code != 0 {
		t.Fatalf("call: exit %d: %s", code, out)
	}

	nm := scrape(t, rt.HTTPURL)
	checkSeries(t, "node", nm, nodeSeries(dirURL))
	checkSeries(t, "directory", scrape(t, dirURL), directorySeries)

	// A refused registration carrying a token: logged by reason and code only.
	const secret = "tok-e2e-SECRET-must-not-be-logged"
	resp, err := plainClient.Post(dirURL+"/v1/register", "application/json",
		strings.NewReader(`{"node_id":"not-a-node","current_node_token":"`+secret+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("bad register answered %d", resp.StatusCode)
	}

	// Expiry: the node dies without deregistering.
	_ = node.cmd.Process.Signal(syscall.SIGKILL)
	<-node.done
	eventually(t, 20*time.Second, "directory logs the expiry", func() bool {
		return strings.Contains(dir.stderr(), "node expired")
	})
	if dm := scrape(t, dirURL); !hasSeries(dm, `iicp_heartbeat_misses_total 1$`) {
		t.Error("iicp_heartbeat_misses_total did not count the expiry")
	}

	dirLogs := jsonLines(t, "directory", dir.stderr())
	if strings.Contains(dir.stderr(), secret) {
		t.Fatal("the directory logged a token from a rejected registration")
	}
	rej := findLog(dirLogs, "registration rejected")
	if code, _ := rej["code"].(string); rej == nil || rej["reason"] != "invalid" || code == "" {
		t.Errorf("rejected registration log: %v", rej)
	}
	if exp := findLog(dirLogs, "node expired: no heartbeat within stale_after"); exp == nil || exp["node"] != rt.NodeID {
		t.Errorf("expiry log: %v", exp)
	}
	if join := findLog(dirLogs, "replica registered"); join == nil || join["replica_id"] == nil {
		t.Errorf("the seed did not log the replica's join")
	}

	libp2p := checkSubsystems(t, map[string]string{"node": node.stderr(), "directory": dir.stderr(), "replica": rep.stderr()})
	t.Logf("node /metrics: %d bytes; %d libp2p lines in JSON", len(nm), libp2p)
}

// nodeSeries are the series a node's /metrics must have after one task.
func nodeSeries(dirURL string) []string {
	return []string{
		`meshnode_build_info\{goversion="go[^"]+",version="[^"]+"\} 1$`,
		`go_goroutines `, `process_cpu_seconds_total `,
		`meshnode_backend_up 1$`,
		`meshnode_mesh_peers_connected \d`,
		`meshnode_node_registered\{directory="` + regexp.QuoteMeta(dirURL) + `"\} 1$`,
		`meshnode_cx_key_age_seconds \d`,
		`iicp_tasks_total\{`, `iicp_task_latency_ms_bucket\{`, `meshnode_http_request_duration_seconds_bucket`,
	}
}

// directorySeries are the series a seed directory's /metrics must have.
var directorySeries = []string{
	`meshnode_build_info\{`, `go_goroutines `, `process_cpu_seconds_total `,
	`iicp_nodes_active 1$`, `iicp_discovery_latency_ms_count [1-9]`, `iicp_heartbeat_misses_total 0$`,
	`meshnode_directory_request_seconds_bucket`, `meshnode_federation_events_appended_total`,
}

func checkSeries(t *testing.T, who, metrics string, want []string) {
	t.Helper()
	for _, re := range want {
		if !hasSeries(metrics, re) {
			t.Errorf("%s /metrics lacks %s", who, re)
		}
	}
}

// checkSubsystems: every JSON line's subsystem is one [log.levels]
// accepts; it returns how many lines came from libp2p.
func checkSubsystems(t *testing.T, stderrs map[string]string) int {
	t.Helper()
	libp2p := 0
	for name, stderr := range stderrs {
		for _, r := range jsonLines(t, name, stderr) {
			sub, _ := r["subsystem"].(string)
			if !slices.Contains(config.Subsystems, sub) {
				t.Errorf("%s logged subsystem %q, which [log.levels] does not accept: %v", name, sub, r)
			}
			if sub == "libp2p" {
				libp2p++
			}
		}
	}
	if libp2p == 0 {
		t.Error("no libp2p line reached the JSON handler with [log.levels] libp2p = debug")
	}
	return libp2p
}
