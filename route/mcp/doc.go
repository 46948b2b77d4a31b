// Package mcp serves the mesh to MCP clients (Claude Desktop, agent
// frameworks): an MCP server whose tools are the intents the mesh serves
// (llm_chat, llm_completion, llm_embedding…), each tools/call one IICP task
// run by route.Router on the best node it finds (mesh peers, directories,
// this node's engine).
//
// Transport: MCP Streamable HTTP, stateless (iicp-mcp-binding.md §4.2):
// one JSON-RPC 2.0 request per POST answered with one application/json
// body; no session id, no event stream (GET and DELETE get 405). Two
// revisions are declared, one per era of §4: 2026-07-28 (server/discover,
// every request self-contained: MCP-Protocol-Version, Mcp-Method and, for
// tools/call, Mcp-Name must agree with the body and with _meta) and
// 2025-11-25 (initialize / notifications/initialized, answered without a
// session). Methods: initialize, server/discover, ping, tools/list,
// tools/call; notifications are acknowledged with 202.
//
// Trust (§7, docs/mcp.md): the MCP side and the IICP side never share a
// credential. Without an API key the server answers only loopback peers
// that address it by a loopback name and send no foreign Origin (DNS
// rebinding); on any other address an API key is required. The key, the
// request's headers and its _meta never reach a CALL; the router attaches
// the credentials this node holds for each target. _meta members that
// carry IICP credentials are refused. Arguments and results never reach a
// log.
//
// mcp imports wire, route, mesh and dirbridge/dirclient; never internal/daemon.
package mcp
