package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/route"
	"github.com/meshnode/meshnode/wire"
)

// Tool is one MCP tool: an intent the mesh serves.
type Tool struct {
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	// Intent is the IICP intent URN the tool runs (also in _meta).
	Intent string `json:"-"`
}

// ToolName derives a tool's name from an intent URN: "<domain>_<action>"
// ("urn:iicp:intent:llm:chat:v1" → "llm_chat"), "x.<vendor>_<action>" for
// custom intents, "/" in an action read as "_", and "_v<N>" appended for
// versions other than 1. The result fits MCP's tool-name alphabet
// ([A-Za-z0-9_.-], ≤ 128). ok is false for an invalid URN.
func ToolName(intent string) (string, bool) {
	in, werr := wire.ParseIntent(intent)
	if werr != nil {
		return "", false
	}
	head := in.Domain
	if in.Custom() {
		head = "x." + in.Vendor
	}
	name := head + "_" + strings.ReplaceAll(in.Action, "/", "_")
	if in.Version != "1" {
		name += "_v" + in.Version
	}
	if len(name) > 128 {
		return "", false
	}
	return name, true
}

// MaxTools bounds the catalogue: mesh peers' adverts name intents, and a
// hostile peer advertising thousands must not flood an MCP client's
// context. Registered intents are kept first.
const MaxTools = 64

// tools builds the catalogue from the intents the mesh serves: registered
// intents first, then the others in URN order, at most MaxTools, sorted by
// name; when two intents map to one name, the first kept wins. Descriptions
// are this server's own text, never a peer's.
func (s *Server) tools(ctx context.Context) []Tool {
	intents := s.cfg.Intents(ctx)
	sort.SliceStable(intents, func(i, j int) bool {
		_, ki := known[intents[i]]
		_, kj := known[intents[j]]
		if ki != kj {
			return ki
		}
		return intents[i] < intents[j]
	})
	seen := map[string]bool{}
	var out []Tool
	for _, in := range intents {
		name, ok := ToolName(in)
		if !ok || seen[name] {
			continue
		}
		if len(out) == MaxTools {
			break
		}
		seen[name] = true
		out = append(out, describe(name, in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// listTools answers tools/list: every tool on one page (no cursor is ever
// issued, so any cursor is invalid).
func (s *Server) listTools(ctx context.Context, rev revision, params json.RawMessage) (any, *rpcError) {
	var p struct {
		Cursor *string `json:"cursor"`
	}
	if err := json.Unmarshal(orEmpty(params), &p); err != nil {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "tools/list params are malformed")
	}
	if p.Cursor != nil {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "unknown cursor: the tool list has one page")
	}
	list := []map[string]any{}
	for _, t := range s.tools(ctx) {
		list = append(list, map[string]any{"name": t.Name, "title": t.Title, "description": t.Description,
			"inputSchema": t.InputSchema, "_meta": map[string]any{"io.meshnode/intent": t.Intent}})
	}
	m := map[string]any{"tools": list}
	if rev.modern {
		m["ttlMs"], m["cacheScope"] = 0, "private" // the mesh changes: never cache
	}
	return complete(rev, m), nil
}

// callParams are tools/call's params.
type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	// Task asks for the MCP Tasks extension, which this server does not
	// negotiate (§4.4).
	Task json.RawMessage `json:"task"`
}

// callTool answers tools/call: one IICP task through the router. Protocol
// faults (unknown tool, arguments not an object, an extension asked for)
// are JSON-RPC errors; a task that ran and failed, or found no node, is a
// result with isError (MCP: tool execution errors are results).
func (s *Server) callTool(ctx context.Context, rev revision, params json.RawMessage) (any, *rpcError) {
	var p callParams
	if err := json.Unmarshal(orEmpty(params), &p); err != nil || p.Name == "" {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "tools/call needs params.name (a string) and params.arguments (an object)")
	}
	if len(p.Task) > 0 && string(p.Task) != "null" {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "the MCP Tasks extension is not negotiated by this server").withReason(reasonUnsupportedExt)
	}
	args := bytes.TrimSpace(p.Arguments)
	if len(args) == 0 || string(args) == "null" {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "params.arguments must be an object")
	}
	tool := s.lookup(ctx, p.Name)
	if tool == nil {
		return nil, newErr(http.StatusOK, CodeInvalidParams, "unknown tool: tools/list names the tools the mesh serves now")
	}
	call := &wire.Call{TaskID: newUUID(), Intent: tool.Intent, Payload: json.RawMessage(args),
		Constraints: wire.Constraints{TimeoutMs: s.cfg.Timeout.Milliseconds()}}
	if s.cfg.OriginNode != "" {
		call.Trace = &wire.Trace{OriginNode: s.cfg.OriginNode}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout+callOverhead)
	defer cancel()
	res, err := s.cfg.Router.Call(ctx, call, route.Query{AllowPlaintext: s.cfg.AllowPlaintext})
	out := toolResult(res, err, ctx.Err())
	s.log.Debug("mcp tool call", "tool", tool.Name, "path", out.path, "node_id", out.nodeID, "code", out.code)
	return complete(rev, out.body), nil
}

// lookup finds the tool named name: in the current catalogue, else among
// the registered intents (a directory that did not answer the last probe
// must not make llm_chat unknown; the router still decides whether any
// node serves it).
func (s *Server) lookup(ctx context.Context, name string) *Tool {
	for _, t := range s.tools(ctx) {
		if t.Name == name {
			return &t
		}
	}
	for in := range known {
		if n, ok := ToolName(in); ok && n == name {
			t := describe(n, in)
			return &t
		}
	}
	return nil
}

// outcome is a tools/call result and what is logged about it.
type outcome struct {
	body               map[string]any
	path, nodeID, code string
}

// toolResult maps a router outcome onto an MCP CallToolResult. The answer
// goes in content (its text) and structuredContent (the IICP result
// object); which node served, over which path, in _meta. Errors carry the
// IICP code and the node's log-safe message, never the payload.
func toolResult(res *route.Result, err, ctxErr error) outcome {
	o := outcome{}
	meta := map[string]any{}
	if res != nil && res.Path != "" {
		o.path, o.nodeID = string(res.Path), res.NodeID
		meta["io.meshnode/path"], meta["io.meshnode/node_id"] = o.path, o.nodeID
	}
	if err == nil && res != nil && res.Response != nil && res.Response.Status == wire.StatusSuccess {
		result := res.Response.Result
		o.body = map[string]any{"content": []map[string]any{{"type": "text", "text": resultText(result)}},
			"isError": false, "_meta": meta}
		if t := bytes.TrimSpace(result); len(t) > 0 && t[0] == '{' {
			o.body["structuredContent"] = json.RawMessage(t)
		}
		return o
	}
	werr := failure(res, err, ctxErr)
	o.code = string(werr.Code)
	o.body = map[string]any{
		"content":           []map[string]any{{"type": "text", "text": "IICP " + string(werr.Code) + ": " + werr.Message}},
		"structuredContent": map[string]any{"error": map[string]any{"code": werr.Code, "message": werr.Message}},
		"isError":           true, "_meta": meta,
	}
	return o
}

// failure names why a call gave no successful answer.
func failure(res *route.Result, err, ctxErr error) *wire.Error {
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		return werr
	case res != nil && res.Response != nil && res.Response.Error != nil:
		return wire.NewError(res.Response.Error.Code, res.Response.Error.Message)
	case ctxErr != nil:
		return wire.NewError(wire.CodeTaskTimeout, "no node answered within the task timeout")
	case res != nil && res.Response != nil:
		return wire.Errorf(wire.CodeBackendError, "the task ended with status %s", res.Response.Status)
	}
	return wire.NewError(wire.CodeUnavailable, "no node could be reached for this tool")
}

// resultText is what a model reads: the chat or completion text when the
// result has that shape (registry/schemas/llm-*-v1-output.json), else the
// result's JSON.
func resultText(result json.RawMessage) string {
	var r struct {
		Choices []struct {
			Message *struct {
				Content string `json:"content"`
			} `json:"message"`
			Text *string `json:"text"`
		} `json:"choices"`
	}
	if json.Unmarshal(result, &r) == nil && len(r.Choices) > 0 {
		var parts []string
		for _, c := range r.Choices {
			switch {
			case c.Message != nil:
				parts = append(parts, c.Message.Content)
			case c.Text != nil:
				parts = append(parts, *c.Text)
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "\n")
		}
	}
	return string(result)
}

// newUUID is a random UUID v4 (the CALL's task_id).
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return wire.UUIDv4(b)
}
