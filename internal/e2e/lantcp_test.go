package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/daemon/admin"
)

// TestE2E_LANMeshCallsRideTCP (issue 14 item 5): two `meshnode up`
// processes on loopback, each listening on QUIC and TCP as a default
// node does, find each other through a `meshnode directory`; a
// `meshnode call --remote` is answered by the other node over the mesh,
// and the connection it rode is TCP (a LAN peer is dialled over TCP first:
// docs/spec-decisions.md, "Mesh transport on the LAN"), as `meshnode
// peers --json` shows.
func TestE2E_LANMeshCallsRideTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test builds and runs the binary")
	}
	bin := buildBinary(t)
	backend, calls := testBackend(t)
	base := t.TempDir()
	dirHome := filepath.Join(base, "dir")
	writeTestConfig(t, dirHome)
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--no-seed-log")
	dirURL := directoryURL(t, dir)
	homes := []string{filepath.Join(base, "n0"), filepath.Join(base, "n1")}
	for i, h := range homes {
		writeTestConfig(t, h)
		p := start(t, fmt.Sprintf("node %d", i), bin, "--home", h, "up", "--dev", "--directory", dirURL,
			"--backend", backend.URL, "--http", "127.0.0.1:0",
			"--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--p2p", "/ip4/127.0.0.1/tcp/0")
		runtimeOf(t, p, h)
	}
	eventually(t, 60*time.Second, "each node to know the other and hold a membership credential", func() bool {
		for _, h := range homes {
			st := status(t, bin, h)
			if st == nil || st.Mesh.MembershipExpiresAt == nil || len(withNodeID(peers(t, bin, h))) < 1 {
				return false
			}
		}
		return true
	})
	before := calls.Load()
	for i := range 5 {
		o := meshCall(t, bin, homes[0], fmt.Sprintf("lan call %d", i), "--remote")
		if !o.ok() || o.res.Path != admin.PathMesh {
			t.Fatalf("call %d: exit %d, path %q, %s", i, o.code, o.res.Path, o.out)
		}
	}
	if got := calls.Load() - before; got < 5 {
		t.Fatalf("backend saw %d calls, want 5", got)
	}
	ps := withNodeID(peers(t, bin, homes[0]))
	if len(ps) != 1 || len(ps[0].Conns) == 0 {
		t.Fatalf("node 0's peers: %+v; want the other node with an open connection", ps)
	}
	for _, c := range ps[0].Conns {
		if !strings.Contains(c, "/tcp/") {
			t.Fatalf("node 0 reaches node 1 over %s, want TCP on loopback (conns %v)", c, ps[0].Conns)
		}
	}
}
