package mcp

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds an Authorization header to every request of the SDK client.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// sdkSession connects the official Go MCP SDK client at revision (""
// lets the SDK choose: the modern stateless revision).
func sdkSession(t *testing.T, url, key, revision string) *sdk.ClientSession {
	t.Helper()
	var rt http.RoundTripper = &http.Transport{DisableKeepAlives: true}
	if key != "" {
		rt = bearer{key: key, next: rt}
	}
	c := sdk.NewClient(&sdk.Implementation{Name: "meshnode-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: rt},
		DisableStandaloneSSE: true}, &sdk.ClientSessionOptions{ProtocolVersion: revision})
	if err != nil {
		t.Fatalf("SDK connect (%q): %v", revision, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// TestMCP_SDKListAndCallChat: the official Go MCP SDK, at each declared
// revision, lists the tools (one per intent the mesh serves, with the
// registry's input schema) and calls llm_chat; a real node (HTTP bridge,
// engine, OpenAI-compatible backend) answers through route.Router.
func TestMCP_SDKListAndCallChat(t *testing.T) {
	n := startNode(t)
	m := startMCP(t, n, "")
	for _, rev := range []string{"", RevisionLegacy} {
		t.Run("revision="+rev, func(t *testing.T) {
			cs := sdkSession(t, m.url, "", rev)
			want := RevisionModern
			if rev != "" {
				want = rev
			}
			if got := cs.InitializeResult().ProtocolVersion; got != want {
				t.Fatalf("negotiated %q, want %q", got, want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cs.Ping(ctx, nil); err != nil {
				t.Fatalf("ping: %v", err)
			}
			lt, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tl := range lt.Tools {
				names = append(names, tl.Name)
			}
			if !slices.Equal(names, []string{"llm_chat", "llm_embedding"}) {
				t.Fatalf("tools = %v", names)
			}
			res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "llm_chat",
				Arguments: map[string]any{"messages": []map[string]string{{"role": "user", "content": "hello"}}}})
			if err != nil {
				t.Fatalf("tools/call: %v", err)
			}
			if res.IsError || len(res.Content) != 1 {
				t.Fatalf("result: isError=%v content=%d", res.IsError, len(res.Content))
			}
			if tc, ok := res.Content[0].(*sdk.TextContent); !ok || tc.Text != answerText {
				t.Fatalf("content = %#v", res.Content[0])
			}
			if res.Meta["io.meshnode/node_id"] != testNodeID || res.Meta["io.meshnode/path"] != "http" {
				t.Fatalf("_meta = %v", res.Meta)
			}
		})
	}
}

// TestMCP_SDKToolErrorIsResult: a task the node refuses (validation_error:
// no messages) comes back as a tool result with isError and the IICP code,
// not as a transport failure; an unknown tool is a JSON-RPC error.
func TestMCP_SDKToolErrorIsResult(t *testing.T) {
	n := startNode(t)
	m := startMCP(t, n, "")
	cs := sdkSession(t, m.url, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "llm_chat", Arguments: map[string]any{"nothing": 1}})
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	tc, _ := res.Content[0].(*sdk.TextContent)
	if !res.IsError || tc == nil || !strings.Contains(tc.Text, "validation_error") {
		t.Fatalf("want isError with validation_error, got isError=%v %#v", res.IsError, res.Content[0])
	}
	if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "no_such_tool", Arguments: map[string]any{}}); err == nil {
		t.Fatal("unknown tool: want a JSON-RPC error")
	}
}

// TestMCP_SDKWithAPIKey: with an API key the SDK client must present it;
// a client without it cannot connect.
func TestMCP_SDKWithAPIKey(t *testing.T) {
	n := startNode(t)
	const key = "k-0123456789abcdef0123456789abcdef"
	m := startMCP(t, n, key)
	cs := sdkSession(t, m.url, key, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list with the key: %v", err)
	}
	c := sdk.NewClient(&sdk.Implementation{Name: "nokey", Version: "1"}, nil)
	if cs2, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: m.url,
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, DisableStandaloneSSE: true}, nil); err == nil {
		_ = cs2.Close()
		t.Fatal("a client without the API key connected")
	}
}
