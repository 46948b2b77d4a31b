// Package dirbridge groups the HTTP side of IICP. Its sub-packages keep four
// jobs apart:
//
//   - client: the directory client a node uses (register, heartbeat, discover).
//   - httpapi: the node's spec REST surface (POST /v1/task, GET /iicp/health,
//     /metrics), a thin transport in front of the task engine.
//   - directory: the IICP-DIR directory server (SQLite store, scoring, tokens).
//   - federation: the signed event log and replica sync.
//
// dirbridge packages may import wire; they reach the engine only through
// interfaces they declare, and must not import mesh or cmd.
package dirbridge
