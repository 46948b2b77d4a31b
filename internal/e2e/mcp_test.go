package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/meshnode/meshnode/internal/daemon/admin"
)

// TestE2E_MCPToolCallOverMesh (issue 15 item 3): two `meshnode up`
// processes with their own backends. The official Go MCP SDK connects to
// node A's MCP endpoint (runtime.json mcp_url, loopback), lists the tools
// (llm_chat among them) and calls llm_chat; node A's router sends the task
// over the mesh to node B, whose backend answers. Node A's own backend is
// never called; the result's _meta names node B and the mesh path. Node B,
// started with --no-mcp, serves no MCP endpoint.
func TestE2E_MCPToolCallOverMesh(t *testing.T) {
	bin := buildBinary(t)
	// Node A's own backend does not answer (closed at once), so A is
	// unavailable and never the best node for the call: routing local-first
	// would otherwise serve it on A. Its configured model list lets it start.
	backendA, callsA := testBackend(t)
	backendA.Close()
	backendB, callsB := testBackend(t)
	base := t.TempDir()
	dirHome, homeA, homeB := filepath.Join(base, "dir"), filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, h := range []string{dirHome, homeB} {
		writeTestConfig(t, h)
	}
	if err := os.MkdirAll(homeA, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgA := fmt.Sprintf("version = 1\nprofile = \"test\"\n[backend]\nurl = %q\nmodels = [\"e2e-model\"]\n", backendA.URL+"/v1")
	if err := os.WriteFile(filepath.Join(homeA, "config.toml"), []byte(cfgA), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := start(t, "directory", bin, "--home", dirHome, "directory", "--dev", "--listen", "127.0.0.1:0", "--no-seed-log")
	dirURL := directoryURL(t, dir)
	nodeA := start(t, "node A", bin, "--home", homeA, "up", "--dev", "--directory", dirURL,
		"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--mcp-listen", "127.0.0.1:0")
	nodeB := start(t, "node B", bin, "--home", homeB, "up", "--dev", "--directory", dirURL, "--backend", backendB.URL,
		"--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/udp/0/quic-v1", "--no-mcp")
	rtA, rtB := runtimeOf(t, nodeA, homeA), runtimeOf(t, nodeB, homeB)
	if !strings.HasPrefix(rtA.MCPURL, "http://127.0.0.1:") || !strings.HasSuffix(rtA.MCPURL, "/mcp") {
		t.Fatalf("node A mcp_url = %q", rtA.MCPURL)
	}
	if rtB.MCPURL != "" || strings.Contains(nodeB.stdout(), "MCP ") {
		t.Fatalf("node B runs MCP despite --no-mcp: %q", rtB.MCPURL)
	}
	if !strings.Contains(nodeA.stdout(), rtA.MCPURL) {
		t.Fatalf("start-up block does not name the MCP endpoint:\n%s", nodeA.stdout())
	}
	eventually(t, 15*time.Second, "node A to know node B on the mesh", func() bool {
		return slices.ContainsFunc(peers(t, bin, homeA), func(p admin.Peer) bool { return p.NodeID == rtB.NodeID })
	})

	c := sdk.NewClient(&sdk.Implementation{Name: "e2e-agent", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: rtA.MCPURL, DisableStandaloneSSE: true,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}, nil)
	if err != nil {
		t.Fatalf("MCP connect: %v", err)
	}
	defer cs.Close()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if !slices.ContainsFunc(lt.Tools, func(tl *sdk.Tool) bool { return tl.Name == "llm_chat" }) {
		t.Fatalf("llm_chat not among the tools: %+v", lt.Tools)
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "llm_chat",
		Arguments: map[string]any{"messages": []map[string]string{{"role": "user", "content": "hello over mcp"}}}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	tc, _ := res.Content[0].(*sdk.TextContent)
	if res.IsError || tc == nil || tc.Text != "backend says: hello over mcp" {
		t.Fatalf("result: isError=%v content=%#v", res.IsError, res.Content)
	}
	if res.Meta["io.meshnode/node_id"] != rtB.NodeID || res.Meta["io.meshnode/path"] != "mesh" {
		t.Fatalf("served by %v over %v, want node B (%s) over the mesh", res.Meta["io.meshnode/node_id"], res.Meta["io.meshnode/path"], rtB.NodeID)
	}
	if callsB.Load() != 1 || callsA.Load() != 0 {
		t.Fatalf("backend calls: A=%d B=%d, want A=0 B=1", callsA.Load(), callsB.Load())
	}
	for _, p := range []*proc{nodeA, nodeB} {
		if strings.Contains(p.stdout()+p.stderr(), "hello over mcp") {
			t.Fatalf("%s logged the prompt", p.name)
		}
	}
}
