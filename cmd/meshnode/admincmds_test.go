package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/dirbridge/dirclient"
	"github.com/meshnode/meshnode/internal/daemon/admin"
	"github.com/meshnode/meshnode/internal/paths"
	"github.com/meshnode/meshnode/wire"
)

const adminTestToken = "0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeNode is the admin backend of a node that is "running" for a test.
type fakeNode struct{ peers []admin.Peer }

func (f *fakeNode) Status(context.Context) admin.Status {
	return admin.Status{NodeID: "node-1", Version: "v-test", DirectoryMode: "embedded",
		Health: wire.Health{Status: "ok", Intents: []string{wire.IntentChat}}}
}
func (f *fakeNode) Peers(context.Context) []admin.Peer { return f.peers }
func (f *fakeNode) NodeToken() string                  { return "node-token" }
func (f *fakeNode) Reregister() int                    { return 1 }
func (f *fakeNode) Call(context.Context, admin.CallRequest) (*admin.CallResult, *wire.Error) {
	return nil, wire.NewError(wire.CodeE033, "no node serves this intent")
}

// runFakeNode serves b on a loopback admin endpoint and writes the state
// files `meshnode --home home` reads to find it.
func runFakeNode(t *testing.T, home string, b admin.Backend) {
	t.Helper()
	s, err := admin.Listen("127.0.0.1:0", adminTestToken, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	p, err := paths.Resolve(home, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureDirs(); err != nil {
		t.Fatal(err)
	}
	if err := admin.WriteRuntime(p.Runtime, admin.Runtime{PID: os.Getpid(), AdminURL: s.URL(), NodeID: "node-1"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.AdminToken, []byte(adminTestToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// status and peers read the running node through its admin endpoint, as
// text or --json.
func TestStatusAndPeersAgainstRunningNode(t *testing.T) {
	home := t.TempDir()
	runFakeNode(t, home, &fakeNode{peers: []admin.Peer{{PeerID: "12D3KooWabcdefghijklmnopqrstuvwxyz", NodeID: "node-2-uuid",
		Intents: []string{wire.IntentChat}, Load: 0.5, LastSeen: time.Now()}}})

	e, out, _ := testEnv(nil, "")
	if code := execute(e, "--home", home, "status", "--json"); code != exitOK {
		t.Fatalf("status --json exit %d", code)
	}
	var st admin.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.NodeID != "node-1" {
		t.Fatalf("status --json: %v %q", err, out.String())
	}
	e, out, _ = testEnv(nil, "")
	if code := execute(e, "--home", home, "status"); code != exitOK || !strings.Contains(out.String(), "node ID") ||
		!strings.Contains(out.String(), "node-1") {
		t.Fatalf("status exit %d: %q", code, out.String())
	}
	e, out, _ = testEnv(nil, "")
	if code := execute(e, "--home", home, "peers", "--json"); code != exitOK {
		t.Fatalf("peers --json exit %d", code)
	}
	var ps []admin.Peer
	if err := json.Unmarshal(out.Bytes(), &ps); err != nil || len(ps) != 1 || ps[0].NodeID != "node-2-uuid" {
		t.Fatalf("peers --json: %v %q", err, out.String())
	}
	e, out, errb := testEnv(nil, "")
	if code := execute(e, "--home", home, "peers"); code != exitOK || !strings.Contains(out.String(), "PEER") ||
		!strings.Contains(out.String(), "node-2-u") || errb.Len() != 0 {
		t.Fatalf("peers exit %d: %q (stderr %q)", code, out.String(), errb.String())
	}
}

// An empty peer table is still a table on stdout; the note goes to stderr.
func TestPeersEmptyNotesOnStderr(t *testing.T) {
	home := t.TempDir()
	runFakeNode(t, home, &fakeNode{})
	e, out, errb := testEnv(nil, "")
	if code := execute(e, "--home", home, "peers"); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "PEER") || strings.Count(out.String(), "\n") != 1 || !strings.Contains(errb.String(), "no peers yet") {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
}

// TestStatusShowsReadsAndWrites: `meshnode status` names, per seed, the
// directory serving reads and the state of every candidate, and says
// writes go to the seed (issue 17 item 2).
func TestStatusShowsReadsAndWrites(t *testing.T) {
	st := &admin.Status{NodeID: "n", DirectoryMode: "external",
		Directories: []dirclient.Status{{Directory: "https://seed.example", State: "registered"}},
		DirectoryReads: []admin.DirectoryReads{{Seed: "https://seed.example", Directories: []dirclient.ReadStatus{
			{URL: "https://seed.example", Role: dirclient.RoleSeed, Source: dirclient.SourceConfigured, Probed: true, LastError: "directory health: connection refused"},
			{URL: "https://rep.example", Role: dirclient.RoleReplica, Source: dirclient.SourceWellKnown, Probed: true, Healthy: true,
				RTTMs: 1.25, Serving: true, Reads: 7, Signed: true},
		}}}}
	var b strings.Builder
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		"reads for https://seed.example", "https://rep.example (replica); writes go to the seed",
		"replica https://rep.example (well-known)", "healthy, rtt 1.2 ms, 7 reads, signed answers",
		"seed https://seed.example (configured)", "down, 0 reads, last error: directory health: connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
