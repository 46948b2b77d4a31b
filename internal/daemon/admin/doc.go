// Package admin is the running node's local control surface: a small
// HTTP/JSON API on a loopback port that `meshnode status`, `peers`, `token`
// and `call` use. It is not part of IICP and never listens beyond loopback.
//
// Discovery and authentication are file-based: on start the node writes a
// fresh random admin token to <state>/admin.token and its addresses to
// <state>/runtime.json, both mode 0600 in a 0700 directory, so only the
// user who runs the node (and root) can read the token. Every request
// carries it as "Authorization: Bearer <token>"; it is compared in
// constant time. A browser page cannot forge that header cross-origin, and
// the server also refuses non-loopback peers.
//
//	GET  /admin/v1/status  node, directory, mesh and engine state (Status)
//	GET  /admin/v1/peers   the mesh peer table ([]Peer)
//	GET  /admin/v1/token   {"token": ...} the token the node accepts in auth.node_token
//	POST /admin/v1/call    CallRequest → CallResult: run a task on the best
//	                       node, mesh first, then directory discover + HTTP
//
// Errors use the IICP envelope {"error":{"code","message"}}. The call route
// carries task payloads, so neither payloads nor panic values are logged.
//
// admin may import wire, dirbridge/dirclient (for directory status) and
// internal/paths; it must not import the engine, mesh or internal/daemon: the
// composition root implements Backend and passes it in.
package admin
