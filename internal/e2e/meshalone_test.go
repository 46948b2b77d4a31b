package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/wire"
)

const (
	aloneNodes = 5
	aloneCalls = 200
	// aloneConcurrency bounds the `meshnode call` processes at once (the
	// machine has 2 cores).
	aloneConcurrency = 4
	// aloneTTL is the directory's membership lifetime for this test:
	// long enough for 200 calls after the kill (a credential has at least
	// half of it left), short enough to watch it expire.
	aloneTTL = 60 * time.Second
	// aloneLocalEvery: every this many calls go without --remote and may
	// be served by the calling node itself (path local).
	aloneLocalEvery = 20
)

// meshCallOutcome is one `meshnode call --json` run.
type meshCallOutcome struct {
	code int
	res  admin.CallResult
	out  string
}

func meshCall(t *testing.T, bin, home, prompt string, extra ...string) meshCallOutcome {
	t.Helper()
	args := append([]string{"--home", home, "call", "--json", "--timeout", "10s"}, extra...)
	out, code := run(t, bin, 30*time.Second, append(args, prompt)...)
	o := meshCallOutcome{code: code, out: out}
	_ = json.Unmarshal([]byte(out), &o.res)
	return o
}

func (o meshCallOutcome) ok() bool {
	return o.code == 0 && o.res.Response != nil && o.res.Response.Status == wire.StatusSuccess
}

// TestE2E_MeshWithoutDirectory (issue 14 items 1 and 4): five `meshnode up`
// processes bootstrapped by a `meshnode directory`; once every peer table
// is full and every node holds a membership credential, the directory is
// killed. 200 `meshnode call --json` spread over all five nodes then
// succeed over the mesh (path mesh: nothing else is left, the directory is
// dead; every twentieth call may be served by the calling node itself,
// which serves the intent: path local), authorised by the membership
// credentials the serving nodes verify offline, on task streams the
// daemons reuse from call to call. When the credentials expire (a 60 s lifetime configured for the
// test) calls fail with unauthorized naming the expiry; when the directory
// returns, the nodes renew and calls succeed again.
func TestE2E_MeshWithoutDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	c := startAloneCluster(t)
	bin, homes := c.bin, c.homes
	killed := time.Now()
	_ = c.dir.stop(syscall.SIGKILL, 10*time.Second)
	before := c.backendCalls.Load()
	outs := callsOverMesh(t, bin, homes, aloneCalls)
	local := 0
	for i, o := range outs {
		want := admin.PathMesh
		if i%aloneLocalEvery == 0 && o.res.Path == admin.PathLocal {
			want, local = admin.PathLocal, local+1
		}
		if !o.ok() || o.res.Path != want {
			t.Fatalf("call %d via %s with the directory dead: exit %d, path %q, %s", i, filepath.Base(homes[i%aloneNodes]), o.code, o.res.Path, o.out)
		}
	}
	if local == 0 {
		t.Fatal("no call was served by the calling node itself, which serves the intent")
	}
	if got := c.backendCalls.Load() - before; got < aloneCalls {
		t.Fatalf("backend saw %d calls, want %d", got, aloneCalls)
	}
	t.Logf("%d calls over the mesh in %v after the directory was killed", aloneCalls, time.Since(killed).Round(time.Millisecond))
	verified, reused, next := 0, 0, 0
	for _, h := range homes {
		ev := status(t, bin, h).Mesh.Events
		verified += int(ev["membership_verified"])
		reused += int(ev["call_stream_reused"])
		next += int(ev["task_stream_next"])
	}
	if verified == 0 {
		t.Fatal("no node verified a membership credential: calls were authorised some other way")
	}
	// Each `meshnode call` is one process, but the daemons' mesh keeps its
	// task streams: a node calling a peer again reuses an idle stream
	// (issue 14 item 5), served as a follow-up request on the other side.
	if reused == 0 || next == 0 {
		t.Fatalf("no mesh call reused a task stream (reused %d, served on a reused stream %d)", reused, next)
	}
	t.Logf("%d mesh calls travelled on reused task streams", reused)

	waitForExpiry(t, bin, homes, killed)

	// The directory returns (same state, same address): nodes renew.
	addr := strings.TrimPrefix(c.dirURL, "http://")
	dir2 := start(t, "directory again", bin, "--home", c.dirHome, "directory", "--dev", "--listen", addr, "--no-seed-log")
	directoryURL(t, dir2)
	eventually(t, 60*time.Second, "calls to succeed after the directory returned", func() bool {
		o := meshCall(t, bin, homes[0], "directory is back", "--remote")
		return o.ok() && o.res.Path == admin.PathMesh
	})
}

// aloneCluster is a directory and aloneNodes `meshnode up` processes.
type aloneCluster struct {
	bin, dirHome, dirURL string
	dir                  *proc
	homes                []string
	backendCalls         interface{ Load() int64 }
}

// startAloneCluster starts the directory (membership lifetime aloneTTL)
// and the nodes, and waits until every peer table is full and every node
// holds a membership credential.
func startAloneCluster(t *testing.T) *aloneCluster {
	c := &aloneCluster{bin: buildBinary(t)}
	bin := c.bin
	backend, backendCalls := testBackend(t)
	c.backendCalls = backendCalls
	base := t.TempDir()
	c.dirHome = filepath.Join(base, "dir")
	dirHome := c.dirHome
	writeTestConfig(t, dirHome)
	cfg := fmt.Sprintf("version = 1\nprofile = \"test\"\n[directory_server]\nmembership_ttl = %q\n", aloneTTL.String())
	if err := os.WriteFile(filepath.Join(dirHome, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.dir = start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--no-seed-log")
	c.dirURL = directoryURL(t, c.dir)
	c.homes = make([]string, aloneNodes)
	for i := range c.homes {
		c.homes[i] = filepath.Join(base, fmt.Sprintf("n%d", i))
		writeTestConfig(t, c.homes[i])
		p := start(t, fmt.Sprintf("node %d", i), bin, "--home", c.homes[i], "up", "--dev", "--directory", c.dirURL,
			"--backend", backend.URL, "--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1")
		runtimeOf(t, p, c.homes[i])
	}
	eventually(t, 60*time.Second, "full peer tables and a membership credential on every node", func() bool {
		for _, h := range c.homes {
			st := status(t, bin, h)
			if st == nil || st.Mesh.MembershipExpiresAt == nil || len(withNodeID(peers(t, bin, h))) < aloneNodes-1 {
				return false
			}
		}
		return true
	})
	return c
}

// waitForExpiry waits (bounded) until a call is refused because the
// caller's membership expired, and checks the refusal and its counter.
func waitForExpiry(t *testing.T, bin string, homes []string, killed time.Time) {
	// The credentials expire: a clear, documented refusal.
	var firstFail time.Time
	eventually(t, aloneTTL+30*time.Second, "calls to fail once membership expired", func() bool {
		o := meshCall(t, bin, homes[0], "after expiry", "--remote")
		if o.ok() {
			return false
		}
		e := o.res.Response
		if e == nil || e.Error == nil || e.Error.Code != wire.CodeUnauthorized || !strings.Contains(e.Error.Message, "membership credential expired at") {
			t.Fatalf("after expiry: exit %d, %s; want unauthorized naming the expiry", o.code, o.out)
		}
		firstFail = time.Now()
		return true
	})
	t.Logf("first refused call %v after the directory was killed (membership lifetime %v)", firstFail.Sub(killed).Round(time.Second), aloneTTL)
	if firstFail.Sub(killed) < aloneTTL/2 {
		t.Fatalf("a call failed %v after the kill, within the credential's guaranteed half-life", firstFail.Sub(killed))
	}
	var n uint64
	for _, h := range homes[1:] {
		n += status(t, bin, h).Mesh.Events["membership_expired"]
	}
	if n == 0 {
		t.Fatal("membership_expired not counted by the refusing node")
	}

}

// callsOverMesh runs n calls spread round-robin over homes, at most
// aloneConcurrency at once; all but every aloneLocalEvery-th with --remote
// (every node serves the intent, so without it the calling node may serve).
func callsOverMesh(t *testing.T, bin string, homes []string, n int) []meshCallOutcome {
	outs := make([]meshCallOutcome, n)
	sem := make(chan struct{}, aloneConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var extra []string
			if i%aloneLocalEvery != 0 {
				extra = []string{"--remote"}
			}
			outs[i] = meshCall(t, bin, homes[i%len(homes)], fmt.Sprintf("question %d", i), extra...)
		}()
	}
	wg.Wait()
	return outs
}

func withNodeID(ps []admin.Peer) []admin.Peer {
	var out []admin.Peer
	for _, p := range ps {
		if p.NodeID != "" && p.Available {
			out = append(out, p)
		}
	}
	return out
}
