package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// BenchmarkToolCall measures one llm_chat through the MCP endpoint (HTTP,
// JSON-RPC, router, node bridge, engine, httptest backend) against the same
// task through route.Router directly: the difference is the MCP layer.
func BenchmarkToolCall(b *testing.B) {
	b.Run("mcp", func(b *testing.B) {
		n := startNode(b)
		m := startMCP(b, n, "")
		body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"llm_chat","arguments":{"messages":[{"role":"user","content":"hi"}]}}}`)
		hc := &http.Client{Timeout: 10 * time.Second}
		b.ResetTimer()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, m.url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				Result struct {
					IsError bool `json:"isError"`
				} `json:"result"`
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(raw, &out) != nil || out.Result.IsError {
				b.Fatalf("call failed: %s", raw)
			}
		}
		b.StopTimer()
		hc.CloseIdleConnections()
	})
	b.Run("router", func(b *testing.B) {
		n := startNode(b)
		m := startMCP(b, n, "")
		r := m.s.cfg.Router
		b.ResetTimer()
		for b.Loop() {
			call, _ := route.NewTask(wire.IntentChat, json.RawMessage(`{"messages":[{"role":"user","content":"hi"}]}`), 5*time.Second)
			if _, err := r.Call(context.Background(), call, route.Query{AllowPlaintext: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
